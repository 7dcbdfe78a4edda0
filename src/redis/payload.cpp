#include "redis/payload.hpp"

#include <nlohmann/json.hpp>

#include "herald/common/json_input.hpp"
#include "herald/common/json_text.hpp"
#include "herald/ws/frame.hpp"

namespace herald::redis {

using nlohmann::json;

incoming parse_payload(std::string_view payload, std::size_t max_depth) {
  incoming in;
  json_status status = json_status::ok;
  const json doc = parse_json(payload, max_depth, &status);
  if (status == json_status::too_deep) {
    in.refused = "too_deep";
    return in;
  }
  if (doc.is_discarded()) {
    // Not JSON: the text itself is the data (invalid UTF-8 replaced, as JSON must be valid).
    in.data_json = json(std::string(payload)).dump(-1, ' ', false, json::error_handler_t::replace);
    return in;
  }
  bool envelope = doc.is_object() && doc.contains("data");
  if (envelope) {
    for (const auto& [k, v] : doc.items()) {
      if (k != "data" && k != "id" && k != "exclude" && k != "origin" && k != "offset" &&
          k != "epoch" && k != "event")
        envelope = false;
    }
  }
  if (!envelope) {
    in.data_json = doc.dump(-1, ' ', false, json::error_handler_t::replace);
    return in;
  }
  in.data_json = doc["data"].dump(-1, ' ', false, json::error_handler_t::replace);
  const auto text = [&](const char* key) {
    const auto it = doc.find(key);
    return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  in.id = text("id");
  in.exclude = text("exclude");
  in.origin = text("origin");
  in.epoch = text("epoch");
  in.event = text("event");
  if (in.event != "join" && in.event != "leave") in.event.clear();
  if (const auto it = doc.find("offset"); it != doc.end() && it->is_number_unsigned())
    in.offset = it->get<std::uint64_t>();
  return in;
}

std::string make_envelope(const outgoing& o) {
  std::string out;
  out.reserve(64 + o.origin.size() + o.id.size() + o.exclude.size() + o.data_json.size());
  const auto field = [&out](std::string_view key, std::string_view value) {
    out += out.empty() ? "{\"" : ",\"";
    out += key;
    out += "\":\"";
    append_json_escaped(out, value);
    out += '"';
  };
  field("origin", o.origin);
  if (!o.id.empty()) field("id", o.id);
  if (!o.exclude.empty()) field("exclude", o.exclude);
  if (!o.event.empty()) field("event", o.event);
  out += ",\"data\":";
  out += o.data_json;
  out += '}';
  return out;
}

node_op parse_node_op(std::string_view payload, std::size_t max_depth) {
  const json doc = parse_json(payload, max_depth);
  node_op o;
  if (!doc.is_object()) return o;
  o.op = string_member(doc, "op");
  o.origin = string_member(doc, "origin");
  o.nonce = uint_member(doc, "nonce", 0);
  o.rid = uint_member(doc, "rid", 0);
  o.result = string_member(doc, "result");
  o.connection = string_member(doc, "connection");
  o.user = string_member(doc, "user");
  const std::uint64_t code = uint_member(doc, "code", 1000);
  if (code <= 0xffff && ws::is_valid_wire_close_code(static_cast<std::uint16_t>(code)))
    o.code = static_cast<std::uint16_t>(code);
  o.reason = string_member(doc, "reason");
  o.reply = string_member(doc, "reply");
  o.binary = bool_member(doc, "binary", false);
  o.payload = string_member(doc, "payload");
  o.kind = string_member(doc, "kind");
  o.arg = string_member(doc, "arg");
  o.node = string_member(doc, "node");
  o.answer = string_member(doc, "answer");
  o.token = string_member(doc, "token");
  o.end = bool_member(doc, "end", false);
  if (const std::uint64_t st = uint_member(doc, "status", 0); st >= 100 && st <= 599)
    o.status = static_cast<int>(st);
  // A send must carry its payload as a string; anything else is not delivered as "".
  if (const auto p = doc.find("payload");
      (o.op == "send" || o.op == "post") && (p == doc.end() || !p->is_string()))
    o.op.clear();
  return o;
}

}  // namespace herald::redis
