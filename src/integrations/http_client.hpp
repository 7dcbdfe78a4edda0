// A keep-alive HTTP/1.1 client for one backend, owned by one worker (no locks): a bounded
// pool of connections, a bounded queue of requests waiting for one, deadlines on every step,
// and one retry when a reused keep-alive connection turns out to have been closed by the
// backend before it answered (the only failure where a POST is known not to have been seen).
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "herald/common/url.hpp"
#include "herald/config/config.hpp"
#include "herald/delivery/connection.hpp"
#include "net/net.hpp"

namespace herald::net {

// An HTTP answer, or why there was none.
struct client_response {
  unsigned status = 0;
  string_pairs headers;
  std::string body;
};

// `error` is empty on success; otherwise it says what failed ("connect: Connection refused",
// "timeout", ...).
using client_callback = std::function<void(std::string_view error, client_response response)>;

// Keep-alive HTTP/1.1 connections to one backend, per worker (no locks).
class http_client : public std::enable_shared_from_this<http_client> {
 public:
  struct options {
    url_parts url;
    duration timeout = std::chrono::seconds(29);
    duration connect_timeout = std::chrono::seconds(5);
    duration keepalive_timeout = std::chrono::seconds(4);
    std::size_t max_connections = 64;
    std::size_t max_pending = 256;
    std::size_t max_response_bytes = 1024 * 1024;
    std::shared_ptr<ssl::context> tls;  // for https
  };

  http_client(asio::io_context& ioc, options opts);
  ~http_client();

  // POSTs `body` to the backend. `done` runs on this worker's thread, exactly once.
  void post(std::string body, string_pairs headers, client_callback done);

  std::size_t open_connections() const { return open_; }
  std::size_t idle_connections() const { return idle_.size(); }
  std::size_t pending_requests() const { return pending_.size(); }

 private:
  struct request_state {
    std::string body;
    string_pairs headers;
    steady_clock::time_point deadline;
    client_callback done;
    bool retried = false;
  };
  using request_ptr = std::shared_ptr<request_state>;

  class connection;
  template <class Stream>
  class connection_impl;

  void dispatch(request_ptr rq);
  void open_connection(request_ptr rq);
  // Called by a connection when its exchange ends.
  void on_success(const std::shared_ptr<connection>& c, const request_ptr& rq, client_response res,
                  bool keep_alive);
  void on_failure(const std::shared_ptr<connection>& c, const request_ptr& rq, std::string error,
                  bool retryable);
  void next_pending();
  void schedule_sweep();
  void sweep_idle();

  asio::io_context& ioc_;
  options opts_;
  tcp::resolver resolver_;
  asio::steady_timer sweep_timer_;
  bool sweep_scheduled_ = false;
  std::size_t open_ = 0;                           // busy + idle
  std::vector<std::shared_ptr<connection>> idle_;  // most recently used last
  std::deque<request_ptr> pending_;
};

}  // namespace herald::net
