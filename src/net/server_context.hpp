// What the networking layer shares: configuration, logging, the registry, the workers and the
// application behaviour. Owned by herald::server and passed by reference (no globals).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "herald/common/cidr.hpp"
#include "herald/common/log.hpp"
#include "herald/config/config.hpp"
#include "herald/delivery/connection.hpp"
#include "herald/delivery/connection_registry.hpp"

namespace herald {
class authenticator;
class ip_limiter;
class connect_handler;
}  // namespace herald

namespace herald::net {

// The reason of the 1001 close a drain sends: clients should reconnect (to any node).
inline constexpr std::string_view drain_close_reason = "server draining; reconnect";

class worker;
class tls_context;
class sse_directory;
class http_handler;

// A reserved place under websocket.max_connections, from the moment an upgrade is admitted
// until the connection finishes (or the handshake fails). Move-only; releases once.
class admission {
 public:
  admission() = default;
  explicit admission(std::atomic<std::size_t>* count) : count_(count) {}
  admission(admission&& o) noexcept
      : count_(std::exchange(o.count_, nullptr)), hold_(std::move(o.hold_)) {}
  admission& operator=(admission&& o) noexcept {
    if (this != &o) {
      release();
      count_ = std::exchange(o.count_, nullptr);
      hold_ = std::move(o.hold_);
    }
    return *this;
  }
  admission(const admission&) = delete;
  admission& operator=(const admission&) = delete;
  ~admission() { release(); }
  void release() {
    if (count_) count_->fetch_sub(1, std::memory_order_relaxed);
    count_ = nullptr;
    hold_.reset();
  }
  // Something else to let go of with this place (a per-address hold).
  void attach(std::shared_ptr<void> hold) { hold_ = std::move(hold); }

 private:
  std::atomic<std::size_t>* count_ = nullptr;
  std::shared_ptr<void> hold_;
};

// The state the networking layer shares.
struct server_context {
  server_context(const config& c, logger& l, connection_registry& r);
  ~server_context();

  const config& cfg;
  logger& log;
  connection_registry& registry;
  connection_handler* handler = nullptr;  // what connections report to (the router)
  std::vector<std::unique_ptr<worker>> workers;
  std::shared_ptr<tls_context> tls;     // null when tls.mode is off
  http_handler* client_http = nullptr;  // non-upgrade requests on the client listener
  bool serves_files = false;  // http.static_dir: GET on the WebSocket path serves index.html
  http_handler* admin_http = nullptr;       // requests on the admin listener
  connect_handler* connect_hook = nullptr;  // $connect, consulted before an upgrade is accepted
  authenticator* auth = nullptr;            // JWT / REQUEST authorizer, before $connect
  ip_limiter* ip_limits = nullptr;          // websocket.per_ip (null when off)
  std::unique_ptr<sse_directory> sse;       // the open SSE streams, by session token
  // An SSE POST for a stream this node does not hold (connect_sse_to_backplane); null: 404.
  std::function<void(std::string token, std::string body, bool end,
                     std::function<void(int status, std::string body)> done)>
      forward_post;
  // Why the node cannot serve because of its backplane (redis.required_for_readiness), or empty.
  std::function<std::string()> backplane_down;
  std::vector<cidr> trusted_proxies;     // http.trusted_proxies
  std::atomic<bool> listening{false};    // listeners bound and accepting
  std::atomic<bool> draining{false};     // shutting down: /readyz says 503
  std::atomic<bool> closing{false};      // drain under way: refuse upgrades, close new sessions
  std::atomic<std::size_t> admitted{0};  // upgrades admitted and not yet finished
  // WebSocket connections this node takes: websocket.max_connections, lowered to what the
  // descriptor limit allows after a reserve (health checks, Redis, backends, the 503 answers).
  std::size_t connection_limit = 0;
  // Connections answered 503 at accept because the process was out of descriptors anyway.
  std::atomic<std::uint64_t> shed_no_descriptors{0};

  // Reserves a place for a new connection, or nothing when the node is full.
  std::optional<admission> admit(std::size_t limit) {
    if (admitted.fetch_add(1, std::memory_order_relaxed) >= limit) {
      admitted.fetch_sub(1, std::memory_order_relaxed);
      return std::nullopt;
    }
    return admission(&admitted);
  }

  // Picks the worker for a new connection (round robin).
  worker& next_worker() {
    return *workers[next_.fetch_add(1, std::memory_order_relaxed) % workers.size()];
  }

 private:
  std::atomic<std::size_t> next_{0};
};

}  // namespace herald::net
