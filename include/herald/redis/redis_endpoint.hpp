// Where a Redis server is, from a URL. Socket-free, so configuration can check it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace herald::redis {

// Where and how to connect, from a URL: redis://[[user]:password@]host[:port][/db],
// rediss://... (the same over TLS) or unix:///path/to/socket[?db=N].
struct endpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string unix_path;
  std::string username;
  std::string password;
  int db = 0;
  bool tls = false;  // rediss://

  static std::optional<endpoint> parse(std::string_view url, std::string* error = nullptr);
  std::string describe() const;  // for logs, never the password
};

}  // namespace herald::redis
