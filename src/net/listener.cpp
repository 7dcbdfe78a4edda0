#include "net/listener.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

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
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

listener::~listener() {
  if (spare_fd_ >= 0) ::close(spare_fd_);
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

void listener::shed() {
  static constexpr std::string_view answer =
      "HTTP/1.1 503 Service Unavailable\r\nServer: herald\r\nRetry-After: 1\r\n"
      "Content-Type: application/json\r\nContent-Length: 72\r\nConnection: close\r\n\r\n"
      R"({"error":"unavailable","message":"out of file descriptors; retry later"})";
  static_assert(answer.size() - answer.find("\r\n\r\n") - 4 == 72);
  std::uint64_t n = 0;
  while (spare_fd_ >= 0 && n < max_accepts_per_wakeup) {
    ::close(spare_fd_);
    spare_fd_ = -1;
    const int fd =
        ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      // Best effort, never blocking: the answer fits any socket buffer.
      (void)::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fd);
      ++n;
    }
    spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;  // the backlog is empty (or something else is wrong: the caller waits)
  }
  ctx_.shed_no_descriptors.fetch_add(n, std::memory_order_relaxed);
  shed_since_log_ += n;
  // One line per interval, not one per failed accept.
  const auto now = std::chrono::steady_clock::now();
  if (now - last_shed_log_ >= std::chrono::seconds(10)) {
    ctx_.log.error("listener.out_of_descriptors",
                   {{"address", local_.address().to_string()},
                    {"port", local_.port()},
                    {"answered503", shed_since_log_},
                    {"hint",
                     "raise the descriptor limit (RLIMIT_NOFILE) or lower "
                     "websocket.max_connections; see docs/operations.md"}});
    last_shed_log_ = now;
    shed_since_log_ = 0;
  }
}

void listener::on_accept(error_code ec) {
  if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
  const bool out_of_descriptors =
      ec == asio::error::no_descriptors || ec.value() == ENFILE;  // per process, or system-wide
  if (out_of_descriptors) {
    shed();
  } else if (ec) {
    ctx_.log.error("listener.accept_failed", {{"address", local_.address().to_string()},
                                              {"port", local_.port()},
                                              {"error", ec.message()}});
  }
  // Out of descriptors or memory: pause instead of spinning on the error.
  if (out_of_descriptors || ec == asio::error::no_buffer_space || ec == asio::error::no_memory) {
    backoff_.expires_after(std::chrono::milliseconds(100));
    backoff_.async_wait([self = shared_from_this()](error_code wait_ec) {
      if (!wait_ec) self->do_accept();
    });
    return;
  }
  do_accept();
}

}  // namespace herald::net
