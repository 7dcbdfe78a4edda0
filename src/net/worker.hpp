// One worker thread with its own io_context ("shard per core"): the sessions it owns, a
// shared read buffer, a list of sessions with frames to flush this loop turn, a coarse clock
// and a housekeeping tick that enforces per-connection timeouts without a timer per session.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "herald/common/metrics.hpp"
#include "herald/ws/deflate.hpp"
#include "net/mailbox.hpp"
#include "net/net.hpp"
#include "net/server_context.hpp"

namespace herald::net {

class session_base;

// One event loop on one thread, owning its sessions, timers and mailbox.
class worker {
 public:
  worker(unsigned index, server_context& ctx);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  unsigned index() const { return index_; }
  asio::io_context& context() { return ioc_; }
  bool in_this_thread() { return ioc_.get_executor().running_in_this_thread(); }
  worker_metrics& metrics() { return metrics_; }
  const worker_metrics& metrics() const { return metrics_; }

  // Scratch space for one synchronous read inside a handler on this thread. Whatever is
  // still needed after the handler returns must be copied out.
  std::span<char> read_buffer() { return {read_buffer_.get(), read_buffer_size}; }

  // Inflates compressed client messages (permessage-deflate with no client context takeover:
  // each message on its own, so one inflater serves every connection of this worker), into a
  // buffer that is valid until the next call.
  ws::inflater& inflater() { return inflater_; }
  std::string& inflate_buffer() { return inflated_; }

  // Coarse clock, refreshed every tick: precise enough for idle and ping timeouts and free to
  // read on the hot path.
  steady_clock::time_point now() const { return now_; }
  system_time_ms now_ms() const { return now_ms_; }  // wall clock, same refresh

  // Thread-safe: runs `fn` on this worker's thread, after everything posted here before it.
  // Work posted from other threads waits in one mailbox and runs in batches, one loop turn per
  // batch: publications that arrive while the worker is busy are delivered together and leave
  // in one write per connection (see schedule_flush).
  void post(std::function<void()> fn) { mailbox_.post(std::move(fn)); }

  // --- worker thread only ---
  // Plain WebSocket sockets are watched by this worker's own epoll set (edge-triggered,
  // itself watched by the io_context) instead of by a pending Asio operation each: an idle
  // connection then holds no operation, no reactor state and no read area of its own.
  // `s.on_io(events)` runs on this thread for each readiness change. Closing the descriptor
  // ends the watch.
  bool watch(int fd, session_base& s);
  // Adds writability to the watch (after a write found the socket full).
  bool watch_writes(int fd, session_base& s);
  void attach(session_base& s);
  void detach(session_base& s);
  std::size_t session_count() const { return sessions_; }
  // Writes a session's queued frames at the end of this loop turn, so messages queued in
  // the same turn leave in one gathered write.
  void schedule_flush(std::shared_ptr<session_base> s);
  // Graceful drain: starts the close handshake on every session at a random moment within
  // `window`, so the clients of a draining node do not all reconnect at the same instant.
  // Sessions that open later are closed by the session itself (server_context::closing).
  void drain(duration window, std::uint16_t code, std::string reason);

  // Runs the loop on the calling thread until stop().
  void run();
  // Runs the loop on a new thread.
  void start_thread();
  void join();
  // Thread-safe: lets run() return once pending handlers are done... or at once with `now`.
  void stop();

  static constexpr std::size_t read_buffer_size = 64 * 1024;

 private:
  void schedule_tick();
  void on_tick();
  void arm_io();
  void poll_io();
  bool set_watch(int op, int fd, std::uint32_t events, session_base& s);
  void flush_dirty();
  void drain_step();

  unsigned index_;
  server_context& ctx_;
  asio::io_context ioc_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
  asio::steady_timer tick_timer_;
  duration tick_period_;
  steady_clock::time_point now_;
  system_time_ms now_ms_ = 0;
  std::unique_ptr<char[]> read_buffer_;
  ws::inflater inflater_;
  std::string inflated_;
  asio::posix::stream_descriptor io_set_;  // the epoll set of watch()
  mailbox mailbox_;               // work from other threads (after ioc_: destroyed before the loop)
  session_base* head_ = nullptr;  // intrusive list of this worker's sessions
  std::size_t sessions_ = 0;
  std::vector<std::shared_ptr<session_base>> dirty_;
  bool flush_posted_ = false;
  worker_metrics metrics_;
  struct drain_state {
    std::vector<std::weak_ptr<session_base>> order;  // shuffled
    std::size_t next = 0;
    steady_clock::time_point start;
    duration window{};
    std::uint16_t code = 0;
    std::string reason;
  };
  std::optional<drain_state> drain_;
  std::optional<asio::steady_timer> drain_timer_;
  std::thread thread_;
};

}  // namespace herald::net
