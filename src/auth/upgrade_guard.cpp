#include "herald/auth/upgrade_guard.hpp"

#include <algorithm>
#include <cctype>

#include "herald/delivery/channel_policy.hpp"

namespace herald {

bool origin_allowed(const std::vector<std::string>& allowed, std::string_view origin) {
  if (allowed.empty() || origin.empty()) return true;
  std::string lower(origin);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const auto& pattern : allowed) {
    std::string p(pattern);
    std::transform(p.begin(), p.end(), p.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (glob_match(p, lower)) return true;
  }
  return false;
}

ip_limiter::ip_limiter(const per_ip_config& cfg, std::size_t max_tracked)
    : cfg_(cfg), max_tracked_(max_tracked) {}

ip_limiter::verdict ip_limiter::admit(const std::string& ip, clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto [it, fresh] = entries_.try_emplace(ip);
  entry& e = it->second;
  if (fresh) {
    e.tokens = cfg_.connect_burst;
    e.refreshed = now;
  }
  if (cfg_.max_connections > 0 && e.open >= cfg_.max_connections) return verdict::concurrent;
  if (cfg_.connect_rate > 0) {
    const double elapsed = std::chrono::duration<double>(now - e.refreshed).count();
    e.tokens = std::min(cfg_.connect_burst, e.tokens + elapsed * cfg_.connect_rate);
    e.refreshed = now;
    if (e.tokens < 1.0) return verdict::rate;
    e.tokens -= 1.0;
  }
  ++e.open;
  // At most one sweep a second, so a flood of new addresses cannot make every admit a scan.
  if (entries_.size() > max_tracked_ && now - last_prune_ >= std::chrono::seconds(1)) {
    last_prune_ = now;
    prune(now);
  }
  return verdict::ok;
}

void ip_limiter::release(const std::string& ip) {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(ip);
  if (it == entries_.end()) return;
  if (it->second.open > 0) --it->second.open;
}

std::size_t ip_limiter::tracked() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

void ip_limiter::prune(clock::time_point now) {
  // Forget addresses with nothing open whose bucket would be full again: they are back to
  // the state of an address never seen. Addresses with open connections are bounded by
  // websocket.max_connections.
  for (auto it = entries_.begin(); it != entries_.end();) {
    const entry& e = it->second;
    const double elapsed = std::chrono::duration<double>(now - e.refreshed).count();
    const bool full =
        cfg_.connect_rate <= 0 || e.tokens + elapsed * cfg_.connect_rate >= cfg_.connect_burst;
    if (e.open == 0 && full) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace herald
