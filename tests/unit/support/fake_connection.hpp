// Test doubles for the layers above the sockets: a connection that records what it was sent,
// and workers that run posted work when the test says so (one thread, deterministic order).
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "herald/common/worker_poster.hpp"
#include "herald/delivery/connection.hpp"

namespace herald::testing {

// A connection with no socket: send() records the frame, close() the code and reason.
class recording_connection final : public connection {
 public:
  explicit recording_connection(unsigned worker = 0, std::string user = {})
      : connection(make_info(worker, std::move(user))) {}

  send_result send(message_ptr payload, bool binary) override {
    if (closed_code != 0) return send_result::closing;
    frames.push_back(payload->bytes());
    binaries.push_back(binary);
    return send_result::queued;
  }
  void close(std::uint16_t code, std::string reason) override {
    closed_code = code;
    closed_reason = std::move(reason);
  }
  void begin_request() override { ++inflight; }
  void end_request() override { --inflight; }

  std::vector<std::string> frames;
  std::vector<bool> binaries;
  std::uint16_t closed_code = 0;
  std::string closed_reason;
  int inflight = 0;

 private:
  static connection_info make_info(unsigned worker, std::string user) {
    connection_info info;
    info.id = connection_id::generate();
    info.set_user_id(user);
    info.worker = worker;
    info.set_source_ip("127.0.0.1");
    info.connected_at = now_ms();
    return info;
  }
};

// Work posted to workers waits in one queue until run() (in posting order, as a worker's
// mailbox runs it).
class manual_workers {
 public:
  worker_poster poster() {
    return [this](unsigned index, std::function<void()> fn) {
      queue_.emplace_back(index, std::move(fn));
      ++posted_;
    };
  }
  // Runs everything posted, including what that posts; returns how many ran.
  std::size_t run() {
    std::size_t n = 0;
    while (!queue_.empty()) {
      auto [index, fn] = std::move(queue_.front());
      queue_.pop_front();
      last_worker = index;
      fn();
      ++n;
    }
    return n;
  }
  std::size_t posted() const { return posted_; }
  unsigned last_worker = 0;

 private:
  std::deque<std::pair<unsigned, std::function<void()>>> queue_;
  std::size_t posted_ = 0;
};

}  // namespace herald::testing
