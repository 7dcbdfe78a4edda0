// Channel history: publications kept with increasing offsets so subscribers can resume.
//
// An offset numbers the publications of one channel from 1. The epoch names one life of a
// channel's history: when the history is lost (expired, deleted, Redis lost its data) the next
// publication starts a new epoch at offset 1, and a client resuming with the old epoch is told
// `recovered: false` instead of silently missing what was lost.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "herald/config/config.hpp"
#include "herald/delivery/channel_policy.hpp"
#include "herald/delivery/connection.hpp"
#include "herald/protocol/client_frames.hpp"

namespace herald {

// One stored publication.
struct history_entry {
  std::uint64_t offset = 0;
  system_time_ms time = 0;
  std::string id;
  std::string data_json;
};

// The result of storing one publication.
struct stored_result {
  bool ok = false;
  std::string error;  // why not, when !ok
  std::uint64_t offset = 0;
  std::string epoch;
  bool duplicate = false;  // the idempotency key was seen: stored before, not published again
  bool forwarded = false;  // the other nodes' subscribers get it too (a shared store)
};

// What a read asks for. `since` absent: only the position. `from_ack`: since = the
// acknowledged offset (inbox).
struct history_query {
  std::string channel;
  std::optional<std::uint64_t> since;
  bool from_ack = false;
  std::size_t limit = 100;  // entries wanted; one more is read to tell whether more exist
};

// The answer to a history read: the position and the entries after `since`.
struct history_page {
  bool ok = false;
  std::string error;
  std::string epoch;                   // empty: the channel has no history yet
  std::uint64_t top = 0;               // the newest offset
  std::uint64_t acked = 0;             // the acknowledged offset (inbox)
  std::uint64_t from = 0;              // the offset the entries follow (since, or acked)
  std::vector<history_entry> entries;  // offsets > from, oldest first, at most limit + 1
};

// Whether a page lets a subscriber that saw everything up to `from` (in `epoch`, when known)
// continue without a gap: same epoch, nothing trimmed or expired after `from`, no more than
// `limit` entries to replay.
bool history_continuous(const history_page& page, std::string_view client_epoch, std::size_t limit);

// The local backplane's history: in memory, lost on restart (a new epoch then).
class memory_history {
 public:
  explicit memory_history(const config& cfg);

  stored_result append(std::string_view channel, const history_rule& rule,
                       const std::string& data_json, const std::string& id,
                       const std::string& idempotency_key, system_time_ms now);
  history_page read(const history_query& q, const history_rule& rule, system_time_ms now);
  // Raises the acknowledged offset (never lowers it); returns it.
  std::uint64_t ack(std::string_view channel, std::uint64_t offset);
  std::size_t channels() const;

 private:
  struct stream {
    std::string epoch;
    std::uint64_t top = 0;
    std::uint64_t acked = 0;
    system_time_ms last_publish = 0;
    std::deque<history_entry> entries;
    std::unordered_map<std::string, std::pair<std::uint64_t, system_time_ms>> keys;  // -> expiry
  };
  // The channel's stream, reset (new epoch) when it expired.
  stream* live(std::string_view channel, const history_rule& rule, system_time_ms now, bool create);
  std::string new_epoch();

  const config& cfg_;
  std::unordered_map<std::string, stream> streams_;
  std::uint64_t epochs_ = 0;
  std::uint64_t seed_;
};

// An offset as clients and the admin API write it (defined by the client protocol).
using protocol::parse_offset;

// A glob (`*`, `?`) as an anchored Lua pattern, for the Redis function's rule table.
std::string glob_to_lua_pattern(std::string_view glob);

}  // namespace herald
