#include "net/listener.hpp"

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>

#include "net/http_session.hpp"
#include "net/server_context.hpp"
#include "net/worker.hpp"

namespace herald::net {

listener::listener(asio::io_context& ioc, const endpoint& where, listener_role role,
                   server_context& ctx)
    : ioc_(ioc), acceptor_(ioc), backoff_(ioc), role_(role), ctx_(ctx) {
  const auto address = asio::ip::make_address(where.host);
  const tcp::endpoint ep(address, where.port);
  acceptor_.open(ep.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  if (address.is_v6()) acceptor_.set_option(asio::ip::v6_only(false));
  acceptor_.bind(ep);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  // accept_backlog() takes queued connections with synchronous accepts that must not block.
  acceptor_.non_blocking(true);
  local_ = acceptor_.local_endpoint();
}

void listener::start() {
  do_accept();
}

void listener::stop() {
  asio::post(ioc_, [self = shared_from_this()] {
    error_code ignored;
    self->backoff_.cancel();
    self->acceptor_.close(ignored);
  });
}

void listener::do_accept() {
  worker& target = ctx_.next_worker();
  // The new socket belongs to the target worker's io_context from the start.
  acceptor_.async_accept(target.context(),
                         [self = shared_from_this(), &target](error_code ec, tcp::socket socket) {
                           if (!ec) {
                             self->hand_over(target, std::move(socket));
                             self->accept_backlog();
                           }
                           self->on_accept(ec);
                         });
}

void listener::hand_over(worker& target, tcp::socket socket) {
  // Through the worker's mailbox: the connections accepted in one go reach each worker as one
  // batch (one wake-up), not one handler each.
  // (A shared socket: the mailbox holds copyable std::functions.)
  target.post([&target, &ctx = ctx_, role = role_,
               socket = std::make_shared<tcp::socket>(std::move(socket))]() mutable {
    serve_connection(std::move(*socket), role, target, ctx);
  });
}

void listener::accept_backlog() {
  // Under a connection storm many are already queued in the kernel: take them without waiting
  // for another readiness event each.
  for (int i = 0; i < max_accepts_per_wakeup; ++i) {
    worker& target = ctx_.next_worker();
    tcp::socket socket(target.context());
    error_code ec;
    acceptor_.accept(socket, ec);
    if (ec) break;  // would_block: the queue is empty (other errors show on the next async one)
    hand_over(target, std::move(socket));
  }
}

void listener::on_accept(error_code ec) {
  if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
  if (ec) {
    ctx_.log.error("listener.accept_failed", {{"address", local_.address().to_string()},
                                              {"port", local_.port()},
                                              {"error", ec.message()}});
    // Out of file descriptors (or similar): pause instead of spinning on the error.
    if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
        ec == asio::error::no_memory) {
      backoff_.expires_after(std::chrono::milliseconds(100));
      backoff_.async_wait([self = shared_from_this()](error_code wait_ec) {
        if (!wait_ec) self->do_accept();
      });
      return;
    }
  }
  do_accept();
}

}  // namespace herald::net
