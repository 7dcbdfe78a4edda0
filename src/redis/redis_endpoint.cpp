#include "herald/redis/redis_endpoint.hpp"

#include <charconv>

namespace herald::redis {

// ---- endpoint ---------------------------------------------------------------------------------

namespace {

bool parse_int(std::string_view s, int& out, int min, int max) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v < min || v > max) return false;
  out = v;
  return true;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      auto [ptr, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec == std::errc() && ptr == s.data() + i + 3) {
        out += static_cast<char>(v);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

}  // namespace

std::optional<endpoint> endpoint::parse(std::string_view url, std::string* error) {
  const auto fail = [&](std::string why) -> std::optional<endpoint> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  endpoint ep;
  if (url.starts_with("unix://") || url.starts_with("unix:/")) {
    url.remove_prefix(url.starts_with("unix://") ? 7 : 5);
    const auto q = url.find('?');
    ep.unix_path = std::string(url.substr(0, q));
    if (ep.unix_path.empty() || ep.unix_path.front() != '/')
      return fail("expected unix:///absolute/path");
    if (q != std::string_view::npos) {
      const std::string_view query = url.substr(q + 1);
      if (!query.starts_with("db=") || !parse_int(query.substr(3), ep.db, 0, 1000)) {
        return fail("the only query parameter is db=N");
      }
    }
    return ep;
  }
  if (url.starts_with("rediss://")) {
    ep.tls = true;
    url.remove_prefix(9);
  } else if (url.starts_with("redis://")) {
    url.remove_prefix(8);
  } else {
    return fail("expected redis://host:port/db, rediss://host:port/db (TLS) or unix:///path");
  }
  const auto slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos && slash + 1 < url.size()) {
    if (!parse_int(url.substr(slash + 1), ep.db, 0, 1000))
      return fail("the database must be a number");
  }
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      ep.password = percent_decode(userinfo);  // redis://secret@host (password only)
    } else {
      ep.username = percent_decode(userinfo.substr(0, colon));
      ep.password = percent_decode(userinfo.substr(colon + 1));
    }
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return fail("unterminated [ipv6] host");
    ep.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return fail("expected :port after the host");
      port = authority.substr(close + 2);
    }
  } else {
    const auto colon = authority.rfind(':');
    ep.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (ep.host.empty()) return fail("missing host");
  if (!port.empty() && !parse_int(port, ep.port, 1, 65535))
    return fail("the port must be 1 to 65535");
  return ep;
}

std::string endpoint::describe() const {
  std::string out = unix_path.empty()
                        ? (tls ? "rediss://" : "redis://") +
                              (host.find(':') != std::string::npos ? "[" + host + "]" : host) +
                              ":" + std::to_string(port)
                        : "unix://" + unix_path;
  if (db != 0) out += unix_path.empty() ? "/" + std::to_string(db) : "?db=" + std::to_string(db);
  return out;
}

}  // namespace herald::redis
