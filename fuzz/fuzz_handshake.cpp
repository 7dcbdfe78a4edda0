// What an upgrade request carries: header lists and tokens, the key, the query string,
// X-Forwarded-For, Origin, where a token is looked for, and the static file a path names.
#include <string>

#include "fuzz_input.hpp"
#include "herald/auth/authenticator.hpp"
#include "herald/auth/upgrade_guard.hpp"
#include "herald/common/cidr.hpp"
#include "herald/net/static_path.hpp"
#include "herald/routing/event.hpp"
#include "herald/ws/handshake.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace herald;
  const auto f = fuzz::fields(data, size, 4);
  auto offered = ws::split_header_list(f[0]);
  ws::header_has_token(f[0], "upgrade");
  ws::choose_subprotocol(offered, {"chat.v1", "bearer.x"});
  ws::is_valid_client_key(f[1]);
  if (auto decoded = ws::base64_decode(f[1])) {
    if (ws::base64_encode(*decoded) != f[1]) __builtin_trap();  // canonical round trip
  }
  for (const auto& [k, v] : query_pairs(f[2]))
    (void)url_decode(k + v);
  static const std::vector<cidr> proxies{*cidr::parse("10.0.0.0/8"), *cidr::parse("::1/128")};
  client_address("10.1.2.3", f[3], proxies);
  cidr::parse(f[3]);
  origin_allowed({"https://*.example.com", "https://app.example.org"}, f[3]);
  jwt_config jc;
  connect_request req;
  req.target = std::string(f[2]);
  req.headers = {{"Authorization", std::string(f[3])},
                 {"Sec-WebSocket-Protocol", std::string(f[0])}};
  find_token(jc, req, offered);
  if (const auto file = static_file_path(f[2])) {
    // Never a way out of the directory: no "..", no absolute path, no hidden segment.
    if (file->empty() || file->front() == '/' || file->find("/.") != std::string::npos ||
        file->front() == '.')
      __builtin_trap();
    static_content_type(*file);
  }
  return 0;
}
