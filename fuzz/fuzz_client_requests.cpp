// Requests to Herald's own actions as clients send them (subscribe, publish, ack, ...), and
// admin publish bodies: parsed into requests or refused, never a crash; every frame built from
// what was read is valid JSON.
#include <string>

#include <nlohmann/json.hpp>

#include "herald/admin/publish_request.hpp"
#include "herald/common/json_input.hpp"
#include "herald/protocol/client_frames.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace herald;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const nlohmann::json doc = parse_json(text, default_json_max_depth);
  for (auto verb : {protocol::channel_verb::subscribe, protocol::channel_verb::unsubscribe,
                    protocol::channel_verb::publish, protocol::channel_verb::ack,
                    protocol::channel_verb::presence}) {
    const auto r = protocol::parse_channel_request(doc, verb);
    if (!r) continue;
    const std::string reply =
        protocol::error("bad_request", r->field_error.value_or(""), r->channel, r->id_json);
    if (!nlohmann::json::accept(reply)) __builtin_trap();
    if (verb == protocol::channel_verb::publish && !r->field_error &&
        !nlohmann::json::accept(protocol::message(r->channel, r->data_json)))
      __builtin_trap();
  }
  static const config cfg = [] {
    config c;
    c.inbox.enabled = true;
    c.history.rules.push_back({"h.*", 10, std::chrono::hours(1)});
    return c;
  }();
  const auto published = parse_publish_request(text, "key", cfg);
  if (const auto* ok = std::get_if<publish_request>(&published)) {
    for (const auto& p : ok->publications) {
      if (!nlohmann::json::accept(p.payload->bytes())) __builtin_trap();
    }
  }
  return 0;
}
