// Cheap checks on an upgrade before any work is done for it: the Origin allowlist and per
// client address limits (connection rate and open connections). Socket-free and thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "herald/config/config.hpp"

namespace herald {

// Whether a browser's Origin may connect: empty `allowed` allows all; globs (`*`, `?`) match
// the whole origin, compared case-insensitively. An absent Origin (non-browser) is allowed.
bool origin_allowed(const std::vector<std::string>& allowed, std::string_view origin);

// Connections and upgrade attempts per client address (websocket.per_ip).
class ip_limiter {
 public:
  using clock = std::chrono::steady_clock;
  enum class verdict { ok, rate, concurrent };

  explicit ip_limiter(const per_ip_config& cfg, std::size_t max_tracked = 100000);

  bool enabled() const { return cfg_.connect_rate > 0 || cfg_.max_connections > 0; }

  // On `ok` the address holds one more open connection until release(ip).
  verdict admit(const std::string& ip, clock::time_point now);
  void release(const std::string& ip);

  std::size_t tracked() const;

 private:
  struct entry {
    double tokens = 0;
    clock::time_point refreshed;
    std::size_t open = 0;
  };
  void prune(clock::time_point now);

  per_ip_config cfg_;
  std::size_t max_tracked_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, entry> entries_;
  clock::time_point last_prune_{};
};

}  // namespace herald
