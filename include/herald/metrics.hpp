// Counters kept per worker thread: each is written only by its worker (no atomic
// read-modify-write on the hot path) and summed across workers when read.
#pragma once

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

struct worker_metrics {
  gauge connections_open;
  counter connections_opened;
  counter connections_closed;
  counter handshakes_rejected;
  counter messages_in;
  counter messages_out;
  counter bytes_in;
  counter bytes_out;
  counter protocol_errors;
  counter send_queue_dropped;          // messages discarded by the drop policy
  counter send_queue_overflow_closes;  // connections closed by the close policy
  counter write_timeouts;              // connections dropped because the socket stopped draining
  counter pong_timeouts;
  counter messages_throttled;
  counter http_requests;
};

}  // namespace herald
