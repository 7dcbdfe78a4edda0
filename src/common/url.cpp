#include "herald/common/url.hpp"

#include <algorithm>

namespace herald {

std::optional<url_parts> parse_url(std::string_view url) {
  url_parts out;
  if (url.starts_with("http://")) {
    url.remove_prefix(7);
  } else if (url.starts_with("https://")) {
    out.tls = true;
    url.remove_prefix(8);
  } else {
    return std::nullopt;
  }
  const auto slash = url.find_first_of("/?");
  std::string_view authority = url.substr(0, slash);
  out.target = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  if (!out.target.empty() && out.target.front() == '?') out.target.insert(0, "/");
  if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
  out.host_header = std::string(authority);
  std::string_view port;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    out.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return std::nullopt;
      port = authority.substr(close + 2);
    }
  } else {
    const auto colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty()) return std::nullopt;
  if (port.empty()) {
    out.port = out.tls ? "443" : "80";
  } else {
    if (port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        std::stoi(std::string(port)) > 65535) {
      return std::nullopt;
    }
    out.port = std::string(port);
  }
  return out;
}

std::string_view host_without_port(std::string_view host) {
  if (host.starts_with('[')) {
    const auto close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  const auto colon = host.rfind(':');
  // More than one colon without brackets is not host:port; leave it as sent.
  if (colon == std::string_view::npos || host.find(':') != colon) return host;
  return host.substr(0, colon);
}

}  // namespace herald
