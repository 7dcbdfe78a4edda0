// What the networking layer shares: configuration, logging, the registry, the workers and the
// application behaviour. Owned by herald::server and passed by reference (no globals).
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "herald/cidr.hpp"
#include "herald/config.hpp"
#include "herald/connection.hpp"
#include "herald/connection_registry.hpp"
#include "herald/log.hpp"

namespace herald {
class connect_handler;
}

namespace herald::net {

class worker;
class tls_context;
class http_handler;

struct server_context {
  server_context(const config& c, logger& l, connection_registry& r);
  ~server_context();

  const config& cfg;
  logger& log;
  connection_registry& registry;
  connection_handler* handler = nullptr;  // what connections report to (the router)
  std::vector<std::unique_ptr<worker>> workers;
  std::shared_ptr<tls_context> tls;         // null when tls.mode is off
  http_handler* client_http = nullptr;      // non-upgrade requests on the client listener
  http_handler* admin_http = nullptr;       // requests on the admin listener
  connect_handler* connect_hook = nullptr;  // $connect, consulted before an upgrade is accepted
  std::vector<cidr> trusted_proxies;        // http.trusted_proxies
  std::atomic<bool> listening{false};       // listeners bound and accepting
  std::atomic<bool> draining{false};        // shutting down: refuse new connections

  // Picks the worker for a new connection (round robin).
  worker& next_worker() {
    return *workers[next_.fetch_add(1, std::memory_order_relaxed) % workers.size()];
  }

 private:
  std::atomic<std::size_t> next_{0};
};

}  // namespace herald::net
