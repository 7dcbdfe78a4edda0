#include "net/tls_socket.hpp"

#include <cerrno>
#include <climits>

#include <openssl/err.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

namespace herald::net {

tls_socket::tls_socket(tcp::socket socket, SSL_CTX* ctx) : socket_(std::move(socket)) {
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  if (ec) return;
  ssl_ = SSL_new(ctx);
  if (ssl_ == nullptr) return;
  // Records go out as the buffers come (a partial write returns what was taken); a retried
  // write may come from another address holding the same bytes.
  SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_set_fd(ssl_, socket_.native_handle()) != 1) {
    SSL_free(ssl_);
    ssl_ = nullptr;
    return;
  }
  SSL_set_accept_state(ssl_);
}

tls_socket::tls_socket(tls_socket&& other) noexcept
    : socket_(std::move(other.socket_)), ssl_(std::exchange(other.ssl_, nullptr)) {}

tls_socket::~tls_socket() {
  // The descriptor is closed by socket_ (SSL_set_fd's BIO does not own it).
  if (ssl_ != nullptr) SSL_free(ssl_);
}

tls_socket::parts tls_socket::release() {
  parts p;
  if (ssl_ == nullptr) return p;
  boost::system::error_code ec;
  const int fd = socket_.release(ec);  // cancels nothing: no operation is pending
  if (ec) return p;
  p.fd = fd;
  p.ssl = std::exchange(ssl_, nullptr);
  return p;
}

tls_socket::step tls_socket::attempt(SSL* ssl, op kind, void* data, std::size_t size) {
  ERR_clear_error();  // SSL_get_error reads this thread's queue
  const int len = size > INT_MAX ? INT_MAX : static_cast<int>(size);
  int r = 0;
  switch (kind) {
    case op::handshake:
      r = SSL_do_handshake(ssl);
      break;
    case op::read:
      r = SSL_read(ssl, data, len);
      break;
    case op::write:
      r = SSL_write(ssl, data, len);
      break;
  }
  const int saved_errno = errno;
  step s;
  if (r > 0) {
    s.bytes = kind == op::handshake ? 0 : static_cast<std::size_t>(r);
    return s;
  }
  switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
      s.needs = wait::read;
      return s;
    case SSL_ERROR_WANT_WRITE:
      s.needs = wait::write;
      return s;
    case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify
      s.ec = boost::asio::error::eof;
      return s;
    case SSL_ERROR_SYSCALL: {
      const unsigned long e = ERR_get_error();
      if (e != 0) {
        s.ec = error_code(static_cast<int>(e), boost::asio::error::get_ssl_category());
      } else if (r < 0 && saved_errno != 0) {
        s.ec = error_code(saved_errno, boost::system::system_category());
      } else {
        s.ec = boost::asio::ssl::error::stream_truncated;
      }
      return s;
    }
    default: {
      const unsigned long e = ERR_peek_last_error();
      if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        s.ec = boost::asio::ssl::error::stream_truncated;  // closed without close_notify
      } else if (e != 0) {
        s.ec = error_code(static_cast<int>(e), boost::asio::error::get_ssl_category());
      } else {
        s.ec = boost::asio::error::fault;
      }
      ERR_clear_error();
      return s;
    }
  }
}

}  // namespace herald::net
