// A server-side TLS connection in which OpenSSL reads and writes the socket itself (SSL_set_fd),
// instead of asio::ssl::stream's BIO pair. asio::ssl::stream keeps two 17 KB record buffers and
// a BIO pair of about as much for every connection, for its whole life; here the only
// per-connection state is the SSL object, whose buffers OpenSSL gives back while the connection
// is idle (SSL_MODE_RELEASE_BUFFERS). After the upgrade a WebSocket session takes the descriptor
// and the SSL object out (release()) and drives them from its worker's epoll set, as it does a
// plain socket.
//
// Until then it is an Asio AsyncStream (Beast's HTTP reads and writes, the SSE session): the
// operations below wait for readiness with async_wait and retry. Like asio::ssl::stream, it must
// not be moved while an operation is pending, and at most one read and one write may be pending.
#pragma once

#include <cstddef>
#include <utility>

#include <openssl/ssl.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>

namespace herald::net {

class tls_socket {
 public:
  using tcp = boost::asio::ip::tcp;
  using error_code = boost::system::error_code;
  using executor_type = tcp::socket::executor_type;
  using lowest_layer_type = tcp::socket;
  using next_layer_type = tcp::socket;

  // A server connection on `socket` with a new SSL object of `ctx` (which it references, so a
  // reloaded context does not disturb it). `ok()` is false when OpenSSL could not make one.
  tls_socket(tcp::socket socket, SSL_CTX* ctx);
  tls_socket(tls_socket&& other) noexcept;
  tls_socket& operator=(tls_socket&&) = delete;
  ~tls_socket();

  bool ok() const { return ssl_ != nullptr; }
  executor_type get_executor() { return socket_.get_executor(); }
  tcp::socket& lowest_layer() { return socket_; }
  tcp::socket& next_layer() { return socket_; }
  SSL* native_handle() const { return ssl_; }

  // The server handshake. Handler: void(error_code).
  template <class Handler>
  void async_handshake(Handler&& handler) {
    run(op::handshake, nullptr, 0,
        [h = std::forward<Handler>(handler)](error_code ec, std::size_t) mutable { h(ec); });
  }

  // Decrypted bytes into the first non-empty buffer. Handler: void(error_code, std::size_t).
  template <class Buffers, class Handler>
  void async_read_some(const Buffers& buffers, Handler&& handler) {
    const auto b = first(boost::asio::buffer_sequence_begin(buffers),
                         boost::asio::buffer_sequence_end(buffers));
    run(op::read, b.data(), b.size(), std::forward<Handler>(handler));
  }

  // The first non-empty buffer (or as much of it as fits a record), as asio::ssl::stream does;
  // callers such as asio::async_write loop. Handler: void(error_code, std::size_t).
  template <class Buffers, class Handler>
  void async_write_some(const Buffers& buffers, Handler&& handler) {
    const auto b = first(boost::asio::buffer_sequence_begin(buffers),
                         boost::asio::buffer_sequence_end(buffers));
    run(op::write, const_cast<void*>(static_cast<const void*>(b.data())), b.size(),
        std::forward<Handler>(handler));
  }

  // What a WebSocket session takes over: the descriptor (in non-blocking mode) and the SSL
  // object, which reads and writes it. This object holds neither afterwards. fd is -1 (and ssl
  // null) on failure.
  struct parts {
    int fd = -1;
    SSL* ssl = nullptr;
  };
  parts release();

  // One attempt of an operation: done (result, error) or waiting for the socket.
  enum class op : unsigned char { handshake, read, write };
  enum class wait : unsigned char { none, read, write };
  struct step {
    wait needs = wait::none;
    std::size_t bytes = 0;
    error_code ec;
  };
  // SSL_do_handshake, SSL_read or SSL_write once on `ssl`, with OpenSSL's result mapped: an
  // error (asio::error::eof for the peer's close_notify, asio::ssl::error::stream_truncated for
  // an end without one, the system or SSL error otherwise) or what to wait for.
  static step attempt(SSL* ssl, op kind, void* data, std::size_t size);

 private:
  template <class It>
  static auto first(It begin, It end) {
    for (auto it = begin; it != end; ++it) {
      if (boost::asio::buffer(*it).size() != 0) return boost::asio::buffer(*it);
    }
    return decltype(boost::asio::buffer(*begin))();
  }

  template <class Handler>
  void run(op kind, void* data, std::size_t size, Handler&& handler) {
    const step s = size == 0 && kind != op::handshake ? step{} : attempt(ssl_, kind, data, size);
    if (s.needs == wait::none) {
      // Never inside the initiating call.
      boost::asio::post(socket_.get_executor(),
                        [h = std::forward<Handler>(handler), s]() mutable { h(s.ec, s.bytes); });
      return;
    }
    await(s.needs, kind, data, size, std::forward<Handler>(handler));
  }

  template <class Handler>
  void await(wait needs, op kind, void* data, std::size_t size, Handler&& handler) {
    socket_.async_wait(
        needs == wait::read ? tcp::socket::wait_read : tcp::socket::wait_write,
        [this, kind, data, size, h = std::forward<Handler>(handler)](error_code ec) mutable {
          if (ec) return h(ec, 0);
          const step s = attempt(ssl_, kind, data, size);
          if (s.needs == wait::none) return h(s.ec, s.bytes);
          await(s.needs, kind, data, size, std::move(h));
        });
  }

  tcp::socket socket_;
  SSL* ssl_ = nullptr;
};

}  // namespace herald::net
