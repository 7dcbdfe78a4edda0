// A publication on its way to connections: whom it is for, the frame as it goes on the wire
// (built once, shared by every recipient), and what other nodes need to rebuild it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "herald/delivery/history.hpp"
#include "herald/delivery/wire_message.hpp"

namespace herald {

enum class target_kind { connection, user, channel, broadcast };

std::string_view to_string(target_kind k);

// One publication, with its frame serialized once for every recipient.
struct publication {
  target_kind kind = target_kind::channel;
  std::string target;   // connection id, user id or channel name
  message_ptr payload;  // the message as it goes on the wire
  bool binary = false;
  std::string exclude;  // a connection id to skip (e.g. the sender)
  // What other nodes need to build the same frame (JSON publications only).
  std::string data_json;
  std::string id;
  // History channels: the position in the channel's history (0: not stored).
  std::uint64_t offset = 0;
  std::string epoch;
  // Presence channels: "join" or "leave" (the frame's type; data_json is the member).
  std::string event;
  // A retried publication with the same key is stored once (history channels).
  std::string idempotency_key;

  // A JSON publication: {"type":"message",("channel":...,)("id":...,)"data":...}.
  static publication message(target_kind kind, std::string target, std::string data_json,
                             std::string id = {});
  // A publication read back from a channel's history, or received with its offset.
  static publication stored(std::string channel, std::string data_json, std::string id,
                            std::uint64_t offset, std::string epoch);
  // {"type":"join"|"leave","channel":...,"info":{...}}.
  static publication presence_event(std::string channel, std::string event, std::string info_json);
  // {"type":"resync","channel":...,"epoch":...,"offset":N,"reason":...}: the channel's history
  // was lost while this node could not follow it; delivery goes on after `offset` of `epoch`.
  static publication resync(std::string channel, std::string epoch, std::uint64_t offset,
                            std::string_view reason);
};

// What happened to a publication.
struct publish_outcome {
  std::size_t recipients = 0;  // connections on this node it was queued for (not stored ones)
  bool forwarded = false;      // handed to the other nodes
  bool stored = false;         // a history channel: see `store`
  stored_result store;
};

}  // namespace herald
