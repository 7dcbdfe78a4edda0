// The client protocol (docs/protocol.md) in one place: every JSON frame a client receives from
// Herald itself is built here, and every request Herald reads from a client's frame (its own
// actions: subscribe, unsubscribe, publish, ack, presence, heartbeat) is parsed here.
// Socket-free and Boost-free (library herald_protocol); tests/unit/client_frames_test.cpp pins
// the exact bytes against the examples of the documentation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace herald::protocol {

// ---- frames a client receives ----
// Arguments named `*_json` are JSON text already (a publication's data, a request's echoed id);
// every other string is escaped. `id_json` empty: the frame has no "id".

// {"type":"message",("channel":...,)("id":...,)("offset":N,"epoch":...,)"data":...}: a
// publication. `channel` empty for one sent to a connection, a user or everyone; `offset` 0
// for a channel without history.
std::string message(std::string_view channel, std::string_view data_json, std::string_view id = {},
                    std::uint64_t offset = 0, std::string_view epoch = {});

// {"type":"join"|"leave","channel":...,"info":{...}}: a presence change.
std::string presence_change(std::string_view type, std::string_view channel,
                            std::string_view info_json);
// {"connectionId":...,"userId":...|null}: a presence member, as `info` and in presence replies.
std::string member_info(std::string_view connection_id, std::string_view user_id);

// {"type":"resync","channel":...,("epoch":...,)"offset":N,"reason":...}: the channel's history
// was lost under the subscriber; delivery goes on after `offset` of `epoch`.
std::string resync(std::string_view channel, std::string_view epoch, std::uint64_t offset,
                   std::string_view reason);

// {"type":"heartbeat"(,"id":...)}: the answer to the heartbeat action.
std::string heartbeat(std::string_view id_json);

// {"type":"error","code":...,"message":...(,"channel":...)(,"id":...)}: a request of Herald's
// own protocol failed. Codes: bad_request, invalid_channel, forbidden, too_many_subscriptions,
// unavailable, internal_error.
std::string error(std::string_view code, std::string_view message, std::string_view channel = {},
                  std::string_view id_json = {});

// Where a history channel stands, in replies.
struct position {
  std::uint64_t offset = 0;
  std::string_view epoch;
};

// {"type":"subscribed","channel":...(,"id")(,"offset","epoch")(,"recovered")(,"error")}.
struct subscribed_reply {
  std::optional<position> at;      // history channels whose position is known
  std::optional<bool> recovered;   // the subscriber asked to resume
  std::string_view history_error;  // history could not be read
};
std::string subscribed(std::string_view channel, std::string_view id_json,
                       const subscribed_reply& r = {});
// {"type":"unsubscribed","channel":...(,"id")}.
std::string unsubscribed(std::string_view channel, std::string_view id_json);
// {"type":"published","channel":...(,"id")(,"offset","epoch")}.
std::string published(std::string_view channel, std::string_view id_json,
                      std::optional<position> stored = std::nullopt);
// {"type":"acked","channel":...(,"id"),"offset":N}.
std::string acked(std::string_view channel, std::string_view id_json, std::uint64_t offset);

// One member in a presence reply.
struct member {
  std::string_view connection_id;
  std::string_view user_id;  // empty: null
};
// {"type":"presence","channel":...,"members":[...],"truncated":bool(,"id")}.
std::string presence(std::string_view channel, const std::vector<member>& members, bool truncated,
                     std::string_view id_json);

// {"message":...,"connectionId":...,"requestId":...}: API Gateway's own error frames
// ("Forbidden", "Internal server error", "Too many requests"), byte for byte AWS's shape.
std::string gateway_error(std::string_view message, std::string_view connection_id,
                          std::string_view request_id);

// Store-first routes: {"type":"ack","requestId":...,"entry":...} once the message is stored,
// {"type":"error","code":"unavailable","message":...,"requestId":...} when it was not.
std::string stored_ack(std::string_view request_id, std::string_view entry);
std::string not_stored(std::string_view request_id);

// ---- requests a client sends to Herald's own actions ----

// The "id" of a request (a string or an integer), as JSON text to echo, or empty.
std::string request_id_json(const nlohmann::json& doc);

enum class channel_verb { subscribe, unsubscribe, publish, ack, presence };

// A channel action: {"action":...,"channel":...,"id":...} plus "since"/"epoch" (subscribe),
// "offset" (ack) or "data" (publish).
struct channel_request {
  std::string id_json;
  std::string channel;                 // as the client wrote it ("$inbox" included)
  std::optional<std::uint64_t> since;  // subscribe: resume after; ack: the offset
  std::string epoch;
  std::string data_json;  // publish: the data, as JSON text (invalid UTF-8 replaced)
  // A field is malformed or missing. Reported after the channel itself is checked, as
  // error("bad_request", *field_error, channel, id_json).
  std::optional<std::string> field_error;
};

// Reads a channel action. nullopt when "channel" is not a string (answer
// error("bad_request", "\"channel\" must be a string", "", request_id_json(doc))).
std::optional<channel_request> parse_channel_request(const nlohmann::json& doc, channel_verb verb);

// An offset as clients and the admin API write it in text: 1 to 19 decimal digits.
std::optional<std::uint64_t> parse_offset(std::string_view digits);

}  // namespace herald::protocol
