// permessage-deflate: any Sec-WebSocket-Extensions value is negotiated or declined (an agreed
// window is always one zlib can use), any client payload inflates within its bound or is
// refused, and what Herald compresses inflates back to itself.
#include <string>

#include "fuzz_input.hpp"
#include "herald/ws/deflate.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace herald;
  const auto f = fuzz::fields(data, size, 2);
  if (const auto a = ws::negotiate_deflate(f[0], {})) {
    if (a->server_window_bits < 9 || a->server_window_bits > 15) __builtin_trap();
    if (!a->response.starts_with("permessage-deflate")) __builtin_trap();
  }
  static ws::inflater in;
  std::string out;
  constexpr std::size_t limit = 64 * 1024;
  const auto st = in.inflate(f[1], limit, out);
  if (st == ws::inflater::status::ok && out.size() > limit) __builtin_trap();
  if (st != ws::inflater::status::ok && !out.empty()) __builtin_trap();
  if (f[1].size() <= limit) {
    const int bits = 9 + static_cast<int>(size % 7);
    const std::string z = ws::deflate_message(f[1], bits);
    if (in.inflate(z, limit, out) != ws::inflater::status::ok || out != f[1]) __builtin_trap();
  }
  return 0;
}
