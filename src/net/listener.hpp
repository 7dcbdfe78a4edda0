// Owns one listening socket and hands each accepted connection to a worker (round robin).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include <boost/asio/steady_timer.hpp>

#include "herald/config/config.hpp"
#include "net/net.hpp"

namespace herald::net {

struct server_context;
class worker;

// Accepts connections on one address and hands them to the workers.
class listener : public std::enable_shared_from_this<listener> {
 public:
  // Binds and listens at once; throws boost::system::system_error when that fails.
  listener(asio::io_context& ioc, const endpoint& where, listener_role role, server_context& ctx);
  ~listener();

  void start();
  // Stops accepting; thread-safe.
  void stop();
  tcp::endpoint local_endpoint() const { return local_; }
  listener_role role() const { return role_; }

 private:
  void do_accept();
  void on_accept(error_code ec);
  void accept_backlog();
  void hand_over(worker& target, tcp::socket socket);
  // Out of descriptors: the spare one is let go of to accept queued connections, answer each
  // 503 with Retry-After and close it, so clients hear why instead of hanging in the backlog.
  void shed();

  static constexpr int max_accepts_per_wakeup = 64;

  asio::io_context& ioc_;
  tcp::acceptor acceptor_;
  asio::steady_timer backoff_;
  tcp::endpoint local_;
  listener_role role_;
  server_context& ctx_;
  int spare_fd_ = -1;  // held open for shed(); -1 while lent out
  std::chrono::steady_clock::time_point last_shed_log_{};
  std::uint64_t shed_since_log_ = 0;
};

}  // namespace herald::net
