// A Herald node: worker threads, the client and admin listeners, the connection registry
// and the application behaviour, wired from one validated configuration.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "herald/common/log.hpp"
#include "herald/config/config.hpp"

namespace herald {

// A Herald node: builds every component from the configuration, runs and stops them.
class server {
 public:
  // Builds every component and binds the listeners. Throws on a start-up failure
  // (config_error for unusable settings, std::system_error when an address cannot be bound).
  server(const config& cfg, logger& log);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // SIGINT/SIGTERM: first one stops gracefully, a second one at once. Call before run().
  void handle_signals();
  // Serves until stopped: worker 0 runs on the calling thread, the others on their own.
  void run();
  // Thread-safe. Graceful: readiness turns false, listeners close, connections get 1001 and
  // up to shutdown.drain_timeout to finish, then run() returns.
  void stop();
  // Thread-safe. Ends run() at once.
  void stop_now();

  endpoint client_endpoint() const;
  std::optional<endpoint> admin_endpoint() const;
  std::size_t connection_count() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// "<hostname>-<6 random characters>", unique per process.
std::string generate_node_id();

}  // namespace herald
