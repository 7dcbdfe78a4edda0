#include "herald/admin/publish_request.hpp"

#include <nlohmann/json.hpp>

#include "herald/common/json_input.hpp"
#include "herald/delivery/channel_policy.hpp"
#include "herald/delivery/connection_id.hpp"

namespace herald {
namespace {

using json = nlohmann::json;

// One item; `where` prefixes messages in a batch ("item 3: ").
std::variant<publication, publish_refusal> parse_item(const json& item, bool batch,
                                                      std::string_view idempotency_header,
                                                      const config& cfg) {
  const auto fail = [](std::string_view code, std::string message, int status = 400) {
    return publish_refusal{status, std::string(code), std::move(message)};
  };
  if (!item.is_object()) return fail("bad_request", "a publication is a JSON object");
  for (const auto& [k, v] : item.items()) {
    if (k != "channel" && k != "user" && k != "connection" && k != "broadcast" && k != "data" &&
        k != "id" && k != "exclude" && k != "store" && k != "idempotency_key") {
      return fail("bad_request", "unknown field \"" + k + "\"");
    }
  }
  target_kind kind = target_kind::channel;
  std::string target;
  int targets = 0;
  if (const auto it = item.find("channel"); it != item.end()) {
    ++targets;
    if (!it->is_string()) return fail("bad_request", "\"channel\" must be a string");
    kind = target_kind::channel;
    target = it->get<std::string>();
    if (const auto why = check_channel_name(target, cfg.channels.max_name_length))
      return fail("invalid_channel", *why);
  }
  if (const auto it = item.find("user"); it != item.end()) {
    ++targets;
    if (!it->is_string() || it->get_ref<const std::string&>().empty() ||
        it->get_ref<const std::string&>().size() > 256) {
      return fail("bad_request", "\"user\" must be a string of 1 to 256 characters");
    }
    kind = target_kind::user;
    target = it->get<std::string>();
  }
  if (const auto it = item.find("connection"); it != item.end()) {
    ++targets;
    if (!it->is_string() || !connection_id::parse(it->get_ref<const std::string&>()))
      return fail("bad_request", "\"connection\" must be a connection id");
    kind = target_kind::connection;
    target = it->get<std::string>();
  }
  if (const auto it = item.find("broadcast"); it != item.end()) {
    ++targets;
    if (!it->is_boolean() || !it->get<bool>())
      return fail("bad_request", "\"broadcast\" must be true");
    kind = target_kind::broadcast;
  }
  if (targets != 1)
    return fail("bad_request", "name exactly one of channel, user, connection, broadcast");
  const auto data = item.find("data");
  if (data == item.end()) return fail("bad_request", "\"data\" is required");
  std::string id;
  if (const auto it = item.find("id"); it != item.end()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty() ||
        it->get_ref<const std::string&>().size() > 128) {
      return fail("bad_request", "\"id\" must be a string of 1 to 128 characters");
    }
    id = it->get<std::string>();
  }
  std::string exclude;
  if (const auto it = item.find("exclude"); it != item.end()) {
    if (!it->is_string() || !connection_id::parse(it->get_ref<const std::string&>()))
      return fail("bad_request", "\"exclude\" must be a connection id");
    exclude = it->get<std::string>();
  }
  std::string key = batch ? std::string() : std::string(idempotency_header);
  if (const auto it = item.find("idempotency_key"); it != item.end()) {
    if (!it->is_string()) return fail("bad_request", "\"idempotency_key\" must be a string");
    key = it->get<std::string>();
  }
  if (key.size() > 128) return fail("bad_request", "an idempotency key is at most 128 characters");
  if (const auto it = item.find("store"); it != item.end()) {
    if (!it->is_boolean()) return fail("bad_request", "\"store\" must be true or false");
    if (it->get<bool>()) {
      // Stored in the user's inbox, delivered to the user's connections subscribed to $inbox.
      if (kind != target_kind::user)
        return fail("bad_request", "\"store\" applies to user publications (the inbox)");
      if (!cfg.inbox.enabled)
        return fail("bad_request", "the inbox is not enabled (inbox.enabled)");
      kind = target_kind::channel;
      target = std::string(inbox_prefix) + target;
    }
  }
  if (!key.empty() && !(kind == target_kind::channel && find_history_rule(cfg, target)))
    return fail("bad_request", "idempotency keys apply to channels with history and to the inbox");
  auto built = publication::message(kind, std::move(target),
                                    data->dump(-1, ' ', false, json::error_handler_t::replace), id);
  built.exclude = std::move(exclude);
  built.idempotency_key = std::move(key);
  if (built.payload->size() > cfg.websocket.max_message_bytes) {
    return fail("payload_too_large",
                "the message is " + std::to_string(built.payload->size()) +
                    " bytes; the limit is " + std::to_string(cfg.websocket.max_message_bytes),
                413);
  }
  return built;
}

}  // namespace

std::variant<publish_request, publish_refusal> parse_publish_request(
    std::string_view body, std::string_view idempotency_header, const config& cfg) {
  const auto bad = [](std::string message) {
    return publish_refusal{400, "bad_request", std::move(message)};
  };
  json_status parsed = json_status::ok;
  const json doc = parse_json(body, cfg.limits.json_max_depth, &parsed);
  if (parsed == json_status::too_deep)
    return bad("the body is " + describe(parsed, cfg.limits.json_max_depth) +
               " (limits.json_max_depth)");
  if (doc.is_discarded()) return bad("the body is not valid JSON");
  publish_request out;
  out.batch = doc.is_array();
  if (out.batch && (doc.empty() || doc.size() > cfg.admin.max_batch))
    return bad("a batch holds 1 to " + std::to_string(cfg.admin.max_batch) + " publications");
  const std::size_t n = out.batch ? doc.size() : 1;
  out.publications.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto item = parse_item(out.batch ? doc[i] : doc, out.batch, idempotency_header, cfg);
    if (auto* refused = std::get_if<publish_refusal>(&item)) {
      if (out.batch) refused->message = "item " + std::to_string(i) + ": " + refused->message;
      return std::move(*refused);
    }
    out.publications.push_back(std::move(std::get<publication>(item)));
  }
  return out;
}

}  // namespace herald
