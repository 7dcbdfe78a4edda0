// Reading what arrives on a Herald channel in Redis (publications from other nodes or from
// backends using PUBLISH directly). Socket-free, so tests and fuzzers drive it.
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

}  // namespace herald::redis
