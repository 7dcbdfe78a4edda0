// RFC 6455 frames as a client sends them: the decoder fed in two pieces (split where the first
// byte says), with small limits so size checks are reached; every message is UTF-8 checked, and
// with permessage-deflate agreed (a bit of the first byte) compressed messages are inflated with
// a bound, as a session does.
#include <string>

#include "herald/ws/deflate.hpp"
#include "herald/ws/frame.hpp"
#include "herald/ws/utf8.hpp"

namespace {

using namespace herald::ws;

struct sink final : frame_handler {
  std::size_t bytes = 0;
  inflater inflate;
  std::string inflated;
  bool on_message(opcode op, std::string_view payload, bool compressed) override {
    bytes += payload.size();
    if (compressed) {
      // As a session does: inflated with a bound, then checked.
      const auto st = inflate.inflate(payload, 4096, inflated);
      if (st == inflater::status::ok && inflated.size() > 4096) __builtin_trap();
      if (st == inflater::status::ok) (void)is_valid_utf8(inflated);
      return true;
    }
    if (op == opcode::text && !is_valid_utf8(payload)) __builtin_trap();  // decoder checked it
    return true;
  }
  bool on_ping(std::string_view p) override { return p.size() <= 125; }
  bool on_pong(std::string_view p) override { return p.size() <= 125; }
  bool on_close(std::uint16_t code, std::string_view reason) override {
    if (code != close_code::no_status && !is_valid_wire_close_code(code)) __builtin_trap();
    bytes += reason.size();
    return true;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t split = bytes.empty() ? 0 : data[0] % (bytes.size() + 1);
  decoder_limits limits;
  limits.max_frame_bytes = 512;
  limits.max_message_bytes = 1024;
  limits.require_masked = (data[0] & 0x80) == 0;
  limits.allow_compressed = (data[0] & 0x40) != 0;  // permessage-deflate agreed
  decoder d(limits);
  sink s;
  std::span<char> all(bytes.data(), bytes.size());
  if (d.feed(all.first(split), s) != decode_status::ok) return 0;
  d.feed(all.subspan(split), s);
  if (d.buffered_bytes() > 64 * 1024) __builtin_trap();  // bounded by the limits
  return 0;
}
