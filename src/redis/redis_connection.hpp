// One Redis connection: hiredis's async API driven by Boost.Asio on one io_context.
//
// - hiredis owns the socket; a posix::stream_descriptor waits for readiness on the same fd and
//   releases it (never closes it) in hiredis's cleanup hook, so there is one owner of the fd.
// - The read/write hooks are idempotent: at most one wait per direction is outstanding.
// - hiredis 0.14 has no timers, so connect and command timeouts are ours: a steady_timer for
//   the connect, and the deadline of the oldest unanswered command (replies come in order).
//   Either expiring drops the connection, which fails every pending command.
// - The context is never freed from inside a hiredis callback by us: failures found there are
//   finished on a fresh turn of the loop.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "herald/redis/redis_endpoint.hpp"

struct redisAsyncContext;
struct redisReply;

namespace herald::redis {

namespace asio = boost::asio;
using steady_clock = std::chrono::steady_clock;
using duration = std::chrono::milliseconds;

// A reply as hiredis parsed it; valid only during the callback.
using reply_view = const redisReply*;

// One connection to Redis driven by Asio, with our own timeouts and a bounded pipeline.
class redis_connection : public std::enable_shared_from_this<redis_connection> {
 public:
  struct options {
    redis::endpoint endpoint;
    duration connect_timeout = std::chrono::seconds(2);
    duration command_timeout = std::chrono::seconds(2);
  };
  struct callbacks {
    std::function<void()> on_ready;                       // connected, authenticated, db selected
    std::function<void(const std::string& why)> on_lost;  // failed or dropped; once per start()
    std::function<void(reply_view)> on_push;  // pub/sub arrays (message, subscribe, ...)
  };

  redis_connection(asio::io_context& ioc, options opts, callbacks cb);
  ~redis_connection();
  redis_connection(const redis_connection&) = delete;
  redis_connection& operator=(const redis_connection&) = delete;

  // Connects (again). Must not be called while connected.
  void start();
  // Drops the connection now; on_lost is not called. Pending commands get a null reply.
  void stop();

  bool ready() const { return state_ == state::ready; }
  std::size_t pending() const { return deadlines_.size(); }

  // Sends a command (binary-safe arguments). `done` gets the reply, or null if the connection
  // was lost first. Returns false (and never calls `done`) when not ready.
  bool command(const std::vector<std::string>& args, std::function<void(reply_view)> done);
  // SUBSCRIBE / UNSUBSCRIBE: confirmations and messages arrive through on_push.
  bool subscribe(const std::vector<std::string>& channels);
  bool unsubscribe(const std::vector<std::string>& channels);

 private:
  enum class state { idle, connecting, handshake, ready, closed };

  static void hook_add_read(void* self);
  static void hook_del_read(void* self);
  static void hook_add_write(void* self);
  static void hook_del_write(void* self);
  static void hook_cleanup(void* self);
  static void on_connect(const redisAsyncContext* ac, int status);
  static void on_disconnect(const redisAsyncContext* ac, int status);
  static void on_reply(redisAsyncContext* ac, void* reply, void* privdata);
  static void on_push_reply(redisAsyncContext* ac, void* reply, void* privdata);

  bool send_argv(const std::vector<std::string>& args, void (*fn)(redisAsyncContext*, void*, void*),
                 void* privdata, bool expects_reply);
  void wait_readable();
  void wait_writable();
  void arm_command_timer();
  void handshake();
  // Reports the loss once and frees the context (deferred to a new loop turn).
  void lose(std::string why);
  void free_context();

  asio::io_context& ioc_;
  options opts_;
  callbacks cb_;
  redisAsyncContext* ac_ = nullptr;
  std::optional<asio::posix::stream_descriptor> fd_;
  asio::steady_timer connect_timer_;
  asio::steady_timer command_timer_;
  std::deque<steady_clock::time_point> deadlines_;  // unanswered commands, oldest first
  state state_ = state::idle;
  bool want_read_ = false;
  bool want_write_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool timer_armed_ = false;
  bool lost_ = false;        // on_lost already reported for this start()
  unsigned generation_ = 0;  // bumps on every start(): stale handlers recognise themselves
};

}  // namespace herald::redis
