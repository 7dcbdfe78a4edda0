// The Server-Sent Events fallback's wire format, socket-free: events as the WHATWG spec reads
// them, the event id that carries a stream's history positions (what Last-Event-ID resumes
// from), and the channels a stream's URL names.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace herald::protocol::sse {

// Appends one event: an optional `event:` name and `id:`, then `data:` lines (a line break in
// `data`, LF, CR or CRLF, starts another, which EventSource joins back with LF), then the blank
// line that dispatches it.
void append_event(std::string& out, std::string_view event, std::string_view id,
                  std::string_view data);

// A history channel's position.
struct position {
  std::string epoch;
  std::uint64_t offset = 0;
  bool operator==(const position&) const = default;
};
using positions = std::map<std::string, position>;

// "channel~epoch~offset,..." (channel names hold neither ~ nor ,; epochs are hex).
std::string encode_positions(const positions& p);
// The positions in a Last-Event-ID; malformed items are skipped, at most `max_channels` kept.
positions decode_positions(std::string_view id, std::size_t max_channels = 256);

// The values of `name` in a request target's query string, URL-decoded, empty ones skipped.
std::vector<std::string> query_values(std::string_view target, std::string_view name);

}  // namespace herald::protocol::sse
