// http:// and https:// URLs of backends (integrations), parsed once at start-up: socket-free, so
// the configuration checks them with the same parser the HTTP client uses.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace herald {

// A URL split into scheme, host, port, path and the rest.
struct url_parts {
  bool tls = false;
  std::string host;    // a name or an address (IPv6 without brackets)
  std::string port;    // "80" / "443" when the URL names none
  std::string target;  // path and query, "/" at least
  std::string host_header;
};

// http(s)://host[:port][/path][?query]; nullopt when malformed (no host, user info, a bad port).
std::optional<url_parts> parse_url(std::string_view url);

// A Host header without its port, as API Gateway's requestContext.domainName:
// "chat.example.com:8080" → "chat.example.com", "[::1]:8080" → "[::1]" (brackets kept, so it
// can go back into a URL).
std::string_view host_without_port(std::string_view host);

}  // namespace herald
