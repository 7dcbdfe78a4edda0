// One WebSocket connection after the upgrade: owns its stream, decodes frames, keeps a bounded
// outbound queue, and enforces keepalive, idle, duration and write timeouts (driven by its
// worker's tick). Knows nothing about routes or Redis: it reports to a connection_handler.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "herald/delivery/connection.hpp"
#include "herald/ws/frame.hpp"
#include "net/net.hpp"
#include "net/server_context.hpp"

namespace herald::net {

class worker;

// auth.jwt.close_on_expiry: the token's exp passed (4000-4999 is for applications).
inline constexpr std::uint16_t token_expired_code = 4001;

// Errors that mean the peer went away (closed as 1006 "connection lost", not logged).
bool is_disconnect(const error_code& ec);

// websocket.rate_limit's token bucket for one connection's messages (WebSocket frames or SSE
// POSTs).
class message_rate {
 public:
  void start(const rate_limit_config& rl, steady_clock::time_point now) {
    tokens_ = rl.burst;
    refill_at_ = now;
  }
  // Takes a token for one message; false when the connection is over its rate.
  bool take(const rate_limit_config& rl);

 private:
  double tokens_ = 0;
  steady_clock::time_point refill_at_;
};

// The part of a session (WebSocket or SSE) its worker needs, independent of the stream type.
class session_base : public connection {
 public:
  using connection::connection;

  virtual void tick(steady_clock::time_point now) = 0;
  virtual void flush() = 0;
  virtual void shutdown(std::uint16_t code, std::string_view reason) = 0;
  // Readiness of a socket this session registered with worker::watch (epoll events).
  virtual void on_io(std::uint32_t /*events*/) {}
  // The worker is gone: drop whatever keeps this session alive (no handlers run).
  virtual void drop() {}

 private:
  friend class worker;
  session_base* prev_ = nullptr;
  session_base* next_ = nullptr;
};

// Creates the session for an upgraded stream and starts it. `initial` holds bytes the client
// sent right after its handshake request. `deflate_bits` is the agreed permessage-deflate
// window of our messages (9..15), or 0 when the connection is not compressed. Runs on `w`'s
// thread.
template <class Stream>
void start_websocket_session(Stream stream, std::string initial, connection_info info,
                             admission slot, int deflate_bits, worker& w, server_context& ctx);

extern template void start_websocket_session<plain_stream>(plain_stream, std::string,
                                                           connection_info, admission, int, worker&,
                                                           server_context&);
extern template void start_websocket_session<tls_stream>(tls_stream, std::string, connection_info,
                                                         admission, int, worker&, server_context&);

}  // namespace herald::net
