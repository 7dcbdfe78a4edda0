// Counters kept per worker thread: each is written only by its worker (no atomic
// read-modify-write on the hot path) and summed across workers when read.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace herald {

// A monotonically increasing count with a single writer thread and any number of readers.
class counter {
 public:
  void add(std::uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down, written by one thread.
class gauge {
 public:
  void add(std::int64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// Durations in fixed buckets (seconds), single writer. Buckets are stored per bucket and
// made cumulative when rendered.
class latency_histogram {
 public:
  static constexpr std::array<double, 14> bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};

  void observe(double seconds) {
    std::size_t i = 0;
    while (i < bounds.size() && seconds > bounds[i])
      ++i;
    buckets_[i].add();
    sum_.store(sum_.load(std::memory_order_relaxed) + seconds, std::memory_order_relaxed);
  }
  std::uint64_t bucket(std::size_t i) const { return buckets_[i].value(); }  // i <= bounds.size()
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::array<counter, bounds.size() + 1> buckets_;  // the last one is +Inf
  std::atomic<double> sum_{0};
};

// Close codes counted one by one where they mean something, grouped otherwise.
inline constexpr std::array<std::uint16_t, 14> counted_close_codes{
    1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014};

// Why an upgrade was refused (herald_handshakes_rejected_total{reason}).
enum class reject_reason : std::size_t {
  connect_route,     // $connect answered non-2xx
  connection_limit,  // websocket.max_connections
  draining,          // shutting down
  origin,            // websocket.allowed_origins (403)
  ip_rate,           // websocket.per_ip.connect_rate (429)
  ip_connections,    // websocket.per_ip.max_connections (429)
  unauthorized,      // JWT or authorizer: 401
  forbidden,         // authorizer Deny: 403
  auth_error,        // authorizer failed: 500
  count_
};
inline constexpr std::array<const char*, static_cast<std::size_t>(reject_reason::count_)>
    reject_reason_names{"connect_route",  "connection_limit", "draining",  "origin",    "ip_rate",
                        "ip_connections", "unauthorized",     "forbidden", "auth_error"};

// The networking counters of one worker (single writer: that worker).
struct worker_metrics {
  gauge connections_open;
  counter connections_opened;
  counter connections_closed;
  std::array<counter, static_cast<std::size_t>(reject_reason::count_)> handshakes_rejected;
  counter token_expiry_closes;  // auth.jwt.close_on_expiry
  counter drain_closes;         // connections closed by a graceful drain
  void reject(reject_reason r) { handshakes_rejected[static_cast<std::size_t>(r)].add(); }
  counter messages_in;
  counter messages_out;
  counter bytes_in;
  counter bytes_out;
  counter
      socket_writes;  // write calls on client sockets: messages_out / socket_writes = coalescing
  counter protocol_errors;
  counter send_queue_dropped;          // messages discarded by the drop policy
  counter send_queue_overflow_closes;  // connections closed by the close policy
  counter write_timeouts;              // connections dropped because the socket stopped draining
  counter pong_timeouts;
  counter messages_throttled;
  counter http_requests;
  // The SSE fallback.
  gauge sse_open;     // open SSE streams (also in connections_open)
  counter sse_posts;  // client messages received by POST
  // permessage-deflate.
  gauge compressed_open;            // open connections that agreed to it
  counter deflate_declined;         // upgrades whose offers Herald could not accept
  counter deflate_compressions;     // messages compressed (once per message, not per recipient)
  counter deflate_bytes_in;         // ... their size before
  counter deflate_bytes_out;        // ... and after
  counter messages_out_compressed;  // messages queued compressed (RSV1)
  counter messages_inflated;        // client messages that arrived compressed
  // Closes by code: counted_close_codes, then 3xxx, 4xxx, other.
  std::array<counter, counted_close_codes.size() + 3> closes_by_code;

  void count_close(std::uint16_t code) {
    for (std::size_t i = 0; i < counted_close_codes.size(); ++i) {
      if (counted_close_codes[i] == code) return closes_by_code[i].add();
    }
    const std::size_t base = counted_close_codes.size();
    if (code >= 3000 && code <= 3999) return closes_by_code[base].add();
    if (code >= 4000 && code <= 4999) return closes_by_code[base + 1].add();
    closes_by_code[base + 2].add();
  }
};

}  // namespace herald
