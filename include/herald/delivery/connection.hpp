// A client connection as the rest of Herald sees it: an id, what we learned at the handshake,
// and thread-safe send/close. The socket, framing and timers stay in the session behind it.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "herald/delivery/connection_id.hpp"
#include "herald/delivery/wire_message.hpp"

namespace herald {

using system_time_ms = std::int64_t;  // milliseconds since the Unix epoch

system_time_ms now_ms();

// A usable user id: 1-256 printable ASCII characters without spaces.
bool valid_user_id(std::string_view id);

// What is known about a connection when it opens. Immutable afterwards, except the
// activity timestamp, which any thread may read.
// Key/value pairs, in order (headers, authorizer context).
using string_pairs = std::vector<std::pair<std::string, std::string>>;

// Sets `key` to `value`, replacing an existing entry with that key or adding one at the end.
void set_pair(string_pairs& pairs, std::string_view key, std::string value);

// What is known about a connection from its handshake on.
struct connection_info {
  connection_info() = default;
  connection_info(const connection_info& other) { *this = other; }
  connection_info(connection_info&& other) noexcept { *this = std::move(other); }
  connection_info& operator=(const connection_info& other);
  connection_info& operator=(connection_info&& other) noexcept;

  connection_id id;
  unsigned worker = 0;
  system_time_ms connected_at = 0;
  system_time_ms expires_at = 0;  // the token's exp, when auth.jwt.close_on_expiry (0: never)
  // What an authorizer returned (principalId and context values as strings), shared by every
  // event of this connection. Null when there was no authorizer.
  std::shared_ptr<const string_pairs> authorizer;

  // The client, behind trusted proxies (http.trusted_proxies).
  std::string_view source_ip() const { return text(f_source_ip); }
  std::string_view user_agent() const { return text(f_user_agent); }
  // Host header of the upgrade request, without the port.
  std::string_view host() const { return text(f_host); }
  std::string_view subprotocol() const { return text(f_subprotocol); }
  // Empty when the connection is anonymous.
  std::string_view user_id() const { return text(f_user_id); }

  void set_source_ip(std::string_view v) { set(f_source_ip, v); }
  void set_user_agent(std::string_view v) { set(f_user_agent, v); }
  void set_host(std::string_view v) { set(f_host, v); }
  void set_subprotocol(std::string_view v) { set(f_subprotocol, v); }
  void set_user_id(std::string_view v) { set(f_user_id, v); }

 private:
  // Every open connection holds one: the five texts share one allocation (none while all are
  // empty) instead of a std::string each (5 x 32 bytes, plus the heap for long ones).
  enum field : std::uint8_t { f_source_ip, f_user_agent, f_host, f_subprotocol, f_user_id, fields };
  std::string_view text(field f) const {
    const std::uint32_t begin = f == 0 ? 0 : end_[f - 1];
    return {text_.get() + begin, end_[f] - begin};
  }
  void set(field f, std::string_view value);

  std::unique_ptr<char[]> text_;
  std::array<std::uint32_t, fields> end_{};  // where each text ends in text_
};

// What became of a send.
enum class send_result {
  queued,   // will be written
  dropped,  // queue full and the policy is drop: counted, connection stays
  closing,  // queue full and the policy is close, or the connection is already closing
};

// A client connection: identity, thread-safe send and close; a session implements it.
class connection : public std::enable_shared_from_this<connection> {
 public:
  explicit connection(connection_info info) : info_(std::move(info)) {}
  virtual ~connection() = default;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  const connection_id& id() const { return info_.id; }
  const connection_info& info() const { return info_; }
  system_time_ms last_active_at() const { return last_active_.load(std::memory_order_relaxed); }

  // Thread-safe. Queues one message; the payload buffer is shared with other recipients and
  // never copied. From another thread the result is decided when the owning worker runs it,
  // so `queued` is returned optimistically unless the queue is already known to be full.
  virtual send_result send(message_ptr payload, bool binary = false) = 0;

  // Thread-safe. Starts the close handshake with this code and reason.
  virtual void close(std::uint16_t code, std::string reason) = 0;

  // Owning worker thread only. Brackets a message being handled asynchronously; while
  // routing.max_inflight_per_connection are open the session stops reading its socket.
  virtual void begin_request() = 0;
  virtual void end_request() = 0;

  // The dispatcher's bookkeeping, kept here rather than in a map per connection: this
  // connection's place in its worker's list (owning worker thread only).
  std::size_t dispatch_slot = static_cast<std::size_t>(-1);

 protected:
  // Records activity. Callers may pass a coarse clock; lastActiveAt never goes back in time and
  // never precedes connectedAt.
  void touch(system_time_ms t) {
    if (t > last_active_.load(std::memory_order_relaxed))
      last_active_.store(t, std::memory_order_relaxed);
  }

 private:
  connection_info info_;
  std::atomic<system_time_ms> last_active_{0};
};

// Application behaviour attached to connections (routing in the gateway, echo in tests).
// Every call happens on the connection's worker thread.
class connection_handler {
 public:
  virtual ~connection_handler() = default;
  virtual void on_open(const std::shared_ptr<connection>& conn) = 0;
  // `payload` is valid only during the call (it points into a shared read buffer).
  virtual void on_message(connection& conn, std::string_view payload, bool binary) = 0;
  // Exactly once for every opened connection, after its socket closed.
  virtual void on_close(connection& conn, std::uint16_t code, std::string_view reason) = 0;
};

}  // namespace herald
