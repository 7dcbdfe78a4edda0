// What a client controls on the SSE fallback: the Last-Event-ID it resumes from and the query
// of its stream's URL. Decoding never fails loudly, what it yields re-encodes to itself, and an
// event built from any data parses back (every line a data field).
#include <string>
#include <string_view>

#include "herald/protocol/sse.hpp"

using namespace herald::protocol::sse;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto p = decode_positions(in, 64);
  if (p.size() > 64) __builtin_trap();
  if (decode_positions(encode_positions(p), 64) != p) __builtin_trap();
  for (const auto& v : query_values(in, "channel")) {
    if (v.empty()) __builtin_trap();
  }
  std::string out;
  append_event(out, {}, {}, in);
  // Every line is "data: ..." and the event ends with the blank line.
  if (out.size() < 8 || out.compare(out.size() - 2, 2, "\n\n") != 0) __builtin_trap();
  std::size_t start = 0;
  while (start < out.size() - 1) {
    const auto nl = out.find('\n', start);
    if (out.compare(start, 6, "data: ") != 0) __builtin_trap();
    if (out.find('\r', start) < nl) __builtin_trap();
    start = nl + 1;
  }
  return 0;
}
