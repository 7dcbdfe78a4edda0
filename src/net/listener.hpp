// Owns one listening socket and hands each accepted connection to a worker (round robin).
#pragma once

#include <memory>

#include <boost/asio/steady_timer.hpp>

#include "herald/config.hpp"
#include "net/net.hpp"

namespace herald::net {

struct server_context;
class worker;

class listener : public std::enable_shared_from_this<listener> {
 public:
  // Binds and listens at once; throws boost::system::system_error when that fails.
  listener(asio::io_context& ioc, const endpoint& where, listener_role role, server_context& ctx);

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

  static constexpr int max_accepts_per_wakeup = 64;

  asio::io_context& ioc_;
  tcp::acceptor acceptor_;
  asio::steady_timer backoff_;
  tcp::endpoint local_;
  listener_role role_;
  server_context& ctx_;
};

}  // namespace herald::net
