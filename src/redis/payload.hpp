// The payloads of Herald's channels in Redis, both ways: the envelope a node publishes, and
// reading what arrives (publications from other nodes, or from backends using PUBLISH
// directly). Socket-free, so tests and fuzzers drive it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace herald::redis {

// How a payload published on a Herald channel is read (exposed for tests): an object with
// "data" and nothing but data/id/exclude/origin/offset/epoch/event is an envelope; anything else
// is the data
// itself (JSON if it parses, else a string).
struct incoming {
  // Set when the payload is refused (counted, not delivered): "too_deep" for JSON nested
  // deeper than the limit. Everything else is then empty.
  std::string refused;
  std::string data_json;
  std::string id;
  std::string exclude;
  std::string origin;
  std::uint64_t offset = 0;  // history channels (from FCALL herald_publish)
  std::string epoch;
  std::string event;  // presence: "join" / "leave"
};
incoming parse_payload(std::string_view payload, std::size_t max_depth);

// What a node publishes: {"origin":...,("id":...,)("exclude":...,)("event":...,)"data":...}.
// The origin lets the publishing node skip its own publication (it delivered it already).
struct outgoing {
  std::string_view origin;
  std::string_view id;
  std::string_view exclude;
  std::string_view event;
  std::string_view data_json;  // JSON text
};
std::string make_envelope(const outgoing& o);

// What nodes tell one another on <prefix>control and <prefix>node:<id>. Anyone with access to
// Redis can publish there, so every member is read leniently: a missing member, or one of
// another type, reads as its default, and a close code no client may receive reads as 1000. A
// "send" without a string payload is unreadable (op "").
struct node_op {
  // "probe", "result", "close", "send", "ask", "answer", "close_user" (from older nodes);
  // "" if unreadable
  std::string op;
  std::string origin;
  std::uint64_t nonce = 0;  // probe
  std::uint64_t rid = 0;    // send and result
  std::string result;       // result: "queued", "dropped", anything else is "gone"
  std::string connection;   // close and send
  std::string user;         // close_user
  std::uint16_t code = 1000;
  std::string reason;
  std::string reply;  // send: the node to answer
  bool binary = false;
  std::string payload;  // send: text, or base64 when binary
  std::string kind;     // ask: the question (node_question's kind)
  std::string arg;      // ask: its argument
  std::string node;     // answer: the node answering
  std::string answer;   // answer: its answer, JSON text
  std::string token;    // post: the SSE stream's session token
  bool end = false;     // post: a DELETE (the client ends the stream)
  int status = 0;       // posted: the HTTP status of the answer (body in payload)
};
node_op parse_node_op(std::string_view payload, std::size_t max_depth);

}  // namespace herald::redis
