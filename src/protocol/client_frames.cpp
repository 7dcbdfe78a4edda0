#include "herald/protocol/client_frames.hpp"

#include <nlohmann/json.hpp>

#include "herald/common/json_text.hpp"

namespace herald::protocol {
namespace {

// Builds one frame: {"type":... then fields in the order they are added, then "}".
class frame {
 public:
  explicit frame(std::size_t reserve = 64) { out_.reserve(reserve); }
  static frame typed(std::string_view type, std::size_t reserve = 64) {
    frame f(reserve);
    f.string("type", type);
    return f;
  }
  frame& string(std::string_view key, std::string_view value) {
    name(key);
    out_ += '"';
    append_json_escaped(out_, value);
    out_ += '"';
    return *this;
  }
  frame& raw(std::string_view key, std::string_view json) {
    name(key);
    out_ += json;
    return *this;
  }
  frame& number(std::string_view key, std::uint64_t value) {
    return raw(key, std::to_string(value));
  }
  frame& boolean(std::string_view key, bool value) { return raw(key, value ? "true" : "false"); }
  // "id" when the request had one.
  frame& id(std::string_view id_json) { return id_json.empty() ? *this : raw("id", id_json); }
  std::string done() && {
    out_ += out_.empty() ? "{}" : "}";
    return std::move(out_);
  }

 private:
  void name(std::string_view key) {
    out_ += out_.empty() ? "{\"" : ",\"";
    out_ += key;  // our own keys: never need escaping
    out_ += "\":";
  }
  std::string out_;
};

}  // namespace

std::string message(std::string_view channel, std::string_view data_json, std::string_view id,
                    std::uint64_t offset, std::string_view epoch) {
  // The hot path of every publication: one allocation, sized up front.
  frame f =
      frame::typed("message", 80 + channel.size() + data_json.size() + id.size() + epoch.size());
  if (!channel.empty()) f.string("channel", channel);
  if (!id.empty()) f.string("id", id);
  if (offset != 0) f.number("offset", offset).string("epoch", epoch);
  return std::move(f.raw("data", data_json)).done();
}

std::string presence_change(std::string_view type, std::string_view channel,
                            std::string_view info_json) {
  return std::move(frame::typed(type).string("channel", channel).raw("info", info_json)).done();
}

std::string member_info(std::string_view connection_id, std::string_view user_id) {
  frame f;
  f.string("connectionId", connection_id);
  if (user_id.empty())
    f.raw("userId", "null");
  else
    f.string("userId", user_id);
  return std::move(f).done();
}

std::string resync(std::string_view channel, std::string_view epoch, std::uint64_t offset,
                   std::string_view reason) {
  frame f = frame::typed("resync");
  f.string("channel", channel);
  // No epoch: the history is empty for now; the next publication starts one.
  if (!epoch.empty()) f.string("epoch", epoch);
  return std::move(f.number("offset", offset).string("reason", reason)).done();
}

std::string heartbeat(std::string_view id_json) {
  return std::move(frame::typed("heartbeat").id(id_json)).done();
}

std::string error(std::string_view code, std::string_view message, std::string_view channel,
                  std::string_view id_json) {
  frame f = frame::typed("error");
  f.string("code", code).string("message", message);
  if (!channel.empty()) f.string("channel", channel);
  return std::move(f.id(id_json)).done();
}

std::string subscribed(std::string_view channel, std::string_view id_json,
                       const subscribed_reply& r) {
  frame f = frame::typed("subscribed");
  f.string("channel", channel).id(id_json);
  if (r.at) f.number("offset", r.at->offset).string("epoch", r.at->epoch);
  if (r.recovered) f.boolean("recovered", *r.recovered);
  if (!r.history_error.empty()) f.string("error", r.history_error);
  return std::move(f).done();
}

std::string unsubscribed(std::string_view channel, std::string_view id_json) {
  return std::move(frame::typed("unsubscribed").string("channel", channel).id(id_json)).done();
}

std::string published(std::string_view channel, std::string_view id_json,
                      std::optional<position> stored) {
  frame f = frame::typed("published");
  f.string("channel", channel).id(id_json);
  if (stored) f.number("offset", stored->offset).string("epoch", stored->epoch);
  return std::move(f).done();
}

std::string acked(std::string_view channel, std::string_view id_json, std::uint64_t offset) {
  return std::move(
             frame::typed("acked").string("channel", channel).id(id_json).number("offset", offset))
      .done();
}

std::string presence(std::string_view channel, const std::vector<member>& members, bool truncated,
                     std::string_view id_json) {
  std::string list = "[";
  for (const auto& m : members) {
    if (list.size() > 1) list += ',';
    list += member_info(m.connection_id, m.user_id);
  }
  list += ']';
  frame f = frame::typed("presence", 64 + list.size());
  f.string("channel", channel).raw("members", list).boolean("truncated", truncated);
  return std::move(f.id(id_json)).done();
}

std::string gateway_error(std::string_view message, std::string_view connection_id,
                          std::string_view request_id) {
  frame f;
  f.string("message", message).string("connectionId", connection_id);
  return std::move(f.string("requestId", request_id)).done();
}

std::string stored_ack(std::string_view request_id, std::string_view entry) {
  return std::move(frame::typed("ack").string("requestId", request_id).string("entry", entry))
      .done();
}

std::string not_stored(std::string_view request_id) {
  frame f = frame::typed("error");
  f.string("code", "unavailable").string("message", "the message was not stored; send it again");
  return std::move(f.string("requestId", request_id)).done();
}

std::string request_id_json(const nlohmann::json& doc) {
  if (doc.is_object()) {
    if (const auto id = doc.find("id");
        id != doc.end() && (id->is_string() || id->is_number_integer())) {
      return id->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
  }
  return {};
}

std::optional<std::uint64_t> parse_offset(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

std::optional<channel_request> parse_channel_request(const nlohmann::json& doc, channel_verb verb) {
  const auto channel = doc.is_object() ? doc.find("channel") : doc.end();
  if (!doc.is_object() || channel == doc.end() || !channel->is_string()) return std::nullopt;
  channel_request r;
  r.id_json = request_id_json(doc);
  r.channel = channel->get<std::string>();
  const auto fail = [&r](std::string why) {
    if (!r.field_error) r.field_error = std::move(why);
  };
  if (verb == channel_verb::subscribe || verb == channel_verb::ack) {
    // "since" (subscribe) or "offset" (ack): a number or a string of digits; null is absent.
    const char* key = verb == channel_verb::ack ? "offset" : "since";
    if (const auto it = doc.find(key); it != doc.end() && !it->is_null()) {
      if (it->is_number_unsigned()) {
        r.since = it->get<std::uint64_t>();
      } else if (it->is_string()) {
        r.since = parse_offset(it->get_ref<const std::string&>());
      }
      if (!r.since) fail(std::string("\"") + key + "\" must be an offset (a non-negative integer)");
    }
    if (const auto e = doc.find("epoch"); e != doc.end() && !e->is_null()) {
      if (!e->is_string() || e->get_ref<const std::string&>().size() > 64)
        fail("\"epoch\" must be a string");
      else
        r.epoch = e->get<std::string>();
    }
    if (verb == channel_verb::ack && !r.since) fail("\"offset\" is required");
  }
  if (verb == channel_verb::publish) {
    const auto data = doc.find("data");
    if (data == doc.end())
      fail("\"data\" is required");
    else
      r.data_json = data->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return r;
}

}  // namespace herald::protocol
