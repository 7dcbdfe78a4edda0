#include "net/worker.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <random>
#include <stdexcept>
#include <system_error>

#include <sys/epoll.h>

#include <boost/asio/post.hpp>

#include "net/sse_session.hpp"
#include "net/websocket_session.hpp"

namespace herald::net {
namespace {

// Timeouts are checked on a tick a quarter of the shortest one, between 10 ms and 1 s.
duration tick_period_for(const config& cfg) {
  const auto& ws = cfg.websocket;
  duration shortest = std::chrono::seconds(1) * 4;
  for (duration d : {ws.idle_timeout, ws.ping_interval, ws.pong_timeout, ws.close_timeout,
                     ws.send_queue.write_timeout, ws.max_duration}) {
    if (d > duration::zero()) shortest = std::min(shortest, d);
  }
  return std::clamp<duration>(shortest / 4, std::chrono::milliseconds(10), std::chrono::seconds(1));
}

int make_epoll_set() {
  const int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  return fd;
}

}  // namespace

server_context::server_context(const config& c, logger& l, connection_registry& r)
    : cfg(c),
      log(l),
      registry(r),
      sse(std::make_unique<sse_directory>()),
      connection_limit(c.websocket.max_connections) {}

server_context::~server_context() = default;

worker::worker(unsigned index, server_context& ctx)
    : index_(index),
      ctx_(ctx),
      ioc_(1),
      tick_timer_(ioc_),
      tick_period_(tick_period_for(ctx.cfg)),
      now_(steady_clock::now()),
      now_ms_(herald::now_ms()),
      read_buffer_(std::make_unique<char[]>(read_buffer_size)),
      io_set_(ioc_, make_epoll_set()),
      mailbox_(ioc_, [this](const std::exception& e) {
        // A bug in one task; the rest of the batch still runs (as separate handlers would).
        ctx_.log.critical("worker.exception", {{"worker", index_}, {"error", e.what()}});
      }) {
  guard_.emplace(ioc_.get_executor());
  schedule_tick();
  arm_io();
}

worker::~worker() {
  join();
  // Sessions still open when the loop ended (the process is stopping): let them go.
  for (auto* s = head_; s;) {
    auto* next = s->next_;
    s->prev_ = s->next_ = nullptr;
    s->drop();
    s = next;
  }
  head_ = nullptr;
}

bool worker::set_watch(int op, int fd, std::uint32_t events, session_base& s) {
  epoll_event ev{};
  ev.events = events | EPOLLIN | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = &s;
  return ::epoll_ctl(io_set_.native_handle(), op, fd, &ev) == 0;
}

bool worker::watch(int fd, session_base& s) {
  return set_watch(EPOLL_CTL_ADD, fd, 0, s);
}

bool worker::watch_writes(int fd, session_base& s) {
  return set_watch(EPOLL_CTL_MOD, fd, EPOLLOUT, s);
}

void worker::arm_io() {
  // Arming an epoll descriptor re-checks it: readiness that arrived while we were handling the
  // last batch is not lost.
  io_set_.async_wait(asio::posix::stream_descriptor::wait_read, [this](error_code ec) {
    if (ec) return;  // the loop is stopping
    poll_io();
    arm_io();
  });
}

void worker::poll_io() {
  std::array<epoll_event, 256> events;  // NOLINT(cppcoreguidelines-pro-type-member-init)
  // A few batches, then let the rest of the loop run (timers, mailbox, flushes).
  for (int round = 0; round < 4; ++round) {
    const int n =
        ::epoll_wait(io_set_.native_handle(), events.data(), static_cast<int>(events.size()), 0);
    if (n <= 0) return;
    // A session that finishes here stays allocated until this handler returns (its release
    // is posted), so the rest of this batch may still name it.
    for (int i = 0; i < n; ++i)
      static_cast<session_base*>(events[i].data.ptr)->on_io(events[i].events);
    if (n < static_cast<int>(events.size())) return;
  }
}

void worker::attach(session_base& s) {
  s.prev_ = nullptr;
  s.next_ = head_;
  if (head_) head_->prev_ = &s;
  head_ = &s;
  ++sessions_;
}

void worker::detach(session_base& s) {
  if (s.prev_) {
    s.prev_->next_ = s.next_;
  } else if (head_ == &s) {
    head_ = s.next_;
  } else {
    return;  // not attached
  }
  if (s.next_) s.next_->prev_ = s.prev_;
  s.prev_ = s.next_ = nullptr;
  --sessions_;
}

void worker::schedule_flush(std::shared_ptr<session_base> s) {
  dirty_.push_back(std::move(s));
  if (flush_posted_) return;
  flush_posted_ = true;
  asio::post(ioc_, [this] { flush_dirty(); });
}

void worker::flush_dirty() {
  flush_posted_ = false;
  // Sessions may schedule again while flushing; those go into the next turn.
  std::vector<std::shared_ptr<session_base>> batch;
  batch.swap(dirty_);
  for (auto& s : batch)
    s->flush();
  batch.clear();
  if (dirty_.empty() && batch.capacity() > dirty_.capacity()) dirty_.swap(batch);  // keep capacity
}

void worker::drain(duration window, std::uint16_t code, std::string reason) {
  drain_state d;
  d.order.reserve(sessions_);
  for (auto* s = head_; s; s = s->next_) {
    d.order.push_back(std::static_pointer_cast<session_base>(s->shared_from_this()));
  }
  // A random order closed at an even pace: each connection's close falls at a uniformly
  // distributed moment of the window.
  std::random_device seed;
  std::shuffle(d.order.begin(), d.order.end(), std::mt19937_64(seed()));
  d.start = steady_clock::now();
  d.window = window;
  d.code = code;
  d.reason = std::move(reason);
  drain_ = std::move(d);
  if (!drain_timer_) drain_timer_.emplace(ioc_);
  drain_step();
}

void worker::drain_step() {
  auto& d = *drain_;
  const std::size_t total = d.order.size();
  std::size_t due = total;
  const auto elapsed = steady_clock::now() - d.start;
  if (d.window > duration::zero() && elapsed < d.window) {
    const std::chrono::duration<double> part = elapsed, whole = d.window;
    due = static_cast<std::size_t>(static_cast<double>(total) * (part / whole));
  }
  for (; d.next < std::min(due, total); ++d.next) {
    if (auto s = d.order[d.next].lock()) {
      metrics_.drain_closes.add(1);
      s->shutdown(d.code, d.reason);
    }
    d.order[d.next].reset();
  }
  if (d.next >= total) return;
  drain_timer_->expires_after(std::chrono::milliseconds(10));
  drain_timer_->async_wait([this](error_code ec) {
    if (ec) return;
    drain_step();
  });
}

void worker::schedule_tick() {
  tick_timer_.expires_after(tick_period_);
  tick_timer_.async_wait([this](error_code ec) {
    if (ec) return;  // cancelled: the worker is stopping
    on_tick();
  });
}

void worker::on_tick() {
  now_ = steady_clock::now();
  now_ms_ = herald::now_ms();
  for (auto* s = head_; s;) {
    auto* next = s->next_;  // tick may detach s
    auto keep = s->shared_from_this();
    s->tick(now_);
    s = next;
  }
  schedule_tick();
}

void worker::run() {
  for (;;) {
    try {
      ioc_.run();
      return;
    } catch (const std::exception& e) {
      // A handler threw: a bug. Log it and keep serving the other connections.
      ctx_.log.critical("worker.exception", {{"worker", index_}, {"error", e.what()}});
    }
  }
}

void worker::start_thread() {
  thread_ = std::thread([this] { run(); });
}

void worker::join() {
  if (thread_.joinable()) thread_.join();
}

void worker::stop() {
  asio::post(ioc_, [this] {
    tick_timer_.cancel();
    if (drain_timer_) drain_timer_->cancel();
    guard_.reset();
    ioc_.stop();
  });
}

}  // namespace herald::net
