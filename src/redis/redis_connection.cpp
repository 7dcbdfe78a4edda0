#include "redis/redis_connection.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <boost/asio/post.hpp>

namespace herald::redis {

// ---- connection -------------------------------------------------------------------------------

namespace {

// A command waiting for its reply (owned by hiredis until the callback).
struct pending_command {
  redis_connection* owner;
  std::function<void(reply_view)> done;
  bool expects_reply;
};

}  // namespace

redis_connection::redis_connection(asio::io_context& ioc, options opts, callbacks cb)
    : ioc_(ioc),
      opts_(std::move(opts)),
      cb_(std::move(cb)),
      connect_timer_(ioc),
      command_timer_(ioc) {}

redis_connection::~redis_connection() {
  lost_ = true;  // a destructor reports nothing
  free_context();
}

void redis_connection::start() {
  ++generation_;
  lost_ = false;
  reading_ = writing_ = want_read_ = want_write_ = timer_armed_ = false;
  deadlines_.clear();
  state_ = state::connecting;
  ac_ = opts_.endpoint.unix_path.empty()
            ? redisAsyncConnect(opts_.endpoint.host.c_str(), opts_.endpoint.port)
            : redisAsyncConnectUnix(opts_.endpoint.unix_path.c_str());
  if (!ac_) return lose("cannot allocate a Redis context");
  if (ac_->err) {
    std::string why = std::string("connect: ") + ac_->errstr;
    redisAsyncFree(ac_);  // no hooks installed yet: nothing else to undo
    ac_ = nullptr;
    return lose(std::move(why));
  }
  ac_->data = this;
  ac_->ev.data = this;
  ac_->ev.addRead = hook_add_read;
  ac_->ev.delRead = hook_del_read;
  ac_->ev.addWrite = hook_add_write;
  ac_->ev.delWrite = hook_del_write;
  ac_->ev.cleanup = hook_cleanup;
  fd_.emplace(ioc_, ac_->c.fd);
  redisAsyncSetDisconnectCallback(ac_, on_disconnect);
  redisAsyncSetConnectCallback(ac_, on_connect);  // asks for writability: the connect's completion
  connect_timer_.expires_after(opts_.connect_timeout);
  connect_timer_.async_wait(
      [weak = weak_from_this(), gen = generation_](boost::system::error_code ec) {
        auto self = weak.lock();
        if (ec || !self || gen != self->generation_) return;
        if (self->state_ == state::connecting || self->state_ == state::handshake)
          self->lose("connect timeout");
      });
}

void redis_connection::stop() {
  lost_ = true;
  state_ = state::closed;
  connect_timer_.cancel();
  command_timer_.cancel();
  free_context();
}

void redis_connection::free_context() {
  if (!ac_) return;
  redisAsyncContext* ac = ac_;
  redisAsyncFree(ac);  // fails pending commands, runs the cleanup hook (ac_ = nullptr)
  ac_ = nullptr;
}

void redis_connection::lose(std::string why) {
  if (state_ != state::closed) state_ = state::closed;
  connect_timer_.cancel();
  command_timer_.cancel();
  if (lost_) return;
  lost_ = true;
  // Never inside a hiredis callback: free and report on a fresh turn of the loop.
  asio::post(ioc_, [weak = weak_from_this(), gen = generation_, why = std::move(why)] {
    auto self = weak.lock();
    if (!self || gen != self->generation_) return;
    self->free_context();
    if (self->cb_.on_lost) self->cb_.on_lost(why);
  });
}

// ---- hiredis hooks ----

void redis_connection::hook_add_read(void* p) {
  auto* self = static_cast<redis_connection*>(p);
  self->want_read_ = true;
  self->wait_readable();
}

void redis_connection::hook_del_read(void* p) {
  static_cast<redis_connection*>(p)->want_read_ = false;
}

void redis_connection::hook_add_write(void* p) {
  auto* self = static_cast<redis_connection*>(p);
  self->want_write_ = true;
  self->wait_writable();
}

void redis_connection::hook_del_write(void* p) {
  static_cast<redis_connection*>(p)->want_write_ = false;
}

void redis_connection::hook_cleanup(void* p) {
  auto* self = static_cast<redis_connection*>(p);
  // hiredis is about to close the fd and free the context: let go of both.
  if (self->fd_) {
    self->fd_->release();  // cancels our waits without closing the fd
    self->fd_.reset();
  }
  self->want_read_ = self->want_write_ = false;
  self->ac_ = nullptr;
}

void redis_connection::wait_readable() {
  if (reading_ || !fd_) return;
  reading_ = true;
  fd_->async_wait(asio::posix::stream_descriptor::wait_read,
                  [self = shared_from_this(), gen = generation_](boost::system::error_code ec) {
                    if (gen != self->generation_) return;
                    self->reading_ = false;
                    if (ec || !self->ac_ || !self->want_read_) return;
                    redisAsyncHandleRead(self->ac_);  // may run callbacks, may free the context
                    if (self->ac_ && self->want_read_) self->wait_readable();
                  });
}

void redis_connection::wait_writable() {
  if (writing_ || !fd_) return;
  writing_ = true;
  fd_->async_wait(asio::posix::stream_descriptor::wait_write,
                  [self = shared_from_this(), gen = generation_](boost::system::error_code ec) {
                    if (gen != self->generation_) return;
                    self->writing_ = false;
                    if (ec || !self->ac_ || !self->want_write_) return;
                    redisAsyncHandleWrite(self->ac_);
                    if (self->ac_ && self->want_write_) self->wait_writable();
                  });
}

void redis_connection::on_connect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<redis_connection*>(ac->data);
  if (status != REDIS_OK) {
    // hiredis frees the context right after this callback.
    return self->lose(std::string("connect: ") + (ac->errstr[0] ? ac->errstr : "failed"));
  }
  self->state_ = state::handshake;
  self->handshake();
}

void redis_connection::on_disconnect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<redis_connection*>(ac->data);
  // hiredis frees the context right after this callback.
  self->lose(status == REDIS_OK ? "disconnected"
                                : std::string(ac->errstr[0] ? ac->errstr : "connection lost"));
}

void redis_connection::on_reply(redisAsyncContext*, void* reply, void* privdata) {
  std::unique_ptr<pending_command> cmd(static_cast<pending_command*>(privdata));
  redis_connection* self = cmd->owner;
  if (cmd->expects_reply && !self->deadlines_.empty()) self->deadlines_.pop_front();
  if (cmd->done) cmd->done(static_cast<redisReply*>(reply));
}

void redis_connection::on_push_reply(redisAsyncContext*, void* reply, void* privdata) {
  auto* self = static_cast<redis_connection*>(privdata);
  if (reply && self->cb_.on_push) self->cb_.on_push(static_cast<redisReply*>(reply));
}

// ---- commands ----

void redis_connection::handshake() {
  // AUTH and SELECT (or a PING), one after the other, then ready.
  std::vector<std::vector<std::string>> steps;
  const auto& ep = opts_.endpoint;
  if (!ep.password.empty()) {
    steps.push_back(ep.username.empty()
                        ? std::vector<std::string>{"AUTH", ep.password}
                        : std::vector<std::string>{"AUTH", ep.username, ep.password});
  }
  if (ep.db != 0) steps.push_back({"SELECT", std::to_string(ep.db)});
  // Ready means Redis answered: a stopped (SIGSTOP) or wedged server still completes the TCP
  // handshake in the kernel, and would otherwise count as connected.
  if (steps.empty()) steps.push_back({"PING"});
  auto run = std::make_shared<std::function<void(std::size_t)>>();
  *run = [this, steps, weak_run = std::weak_ptr<std::function<void(std::size_t)>>(run),
          gen = generation_](std::size_t i) {
    if (gen != generation_) return;
    if (i == steps.size()) {
      state_ = state::ready;
      connect_timer_.cancel();
      if (cb_.on_ready) cb_.on_ready();
      return;
    }
    const bool sent = send_argv(
        steps[i], on_reply,
        new pending_command{this,
                            [this, i, steps, next = weak_run.lock()](reply_view r) {
                              if (!r) return;  // connection lost: reported elsewhere
                              if (r->type == REDIS_REPLY_ERROR) {
                                return lose(steps[i][0] + ": " + std::string(r->str, r->len));
                              }
                              if (next) (*next)(i + 1);
                            },
                            true},
        true);
    if (!sent) lose("cannot send " + steps[i][0]);
  };
  (*run)(0);
}

bool redis_connection::send_argv(const std::vector<std::string>& args,
                                 void (*fn)(redisAsyncContext*, void*, void*), void* privdata,
                                 bool expects_reply) {
  if (!ac_) {
    if (fn == on_reply) delete static_cast<pending_command*>(privdata);
    return false;
  }
  std::vector<const char*> argv;
  std::vector<std::size_t> argvlen;
  argv.reserve(args.size());
  argvlen.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    argvlen.push_back(a.size());
  }
  if (redisAsyncCommandArgv(ac_, fn, privdata, static_cast<int>(argv.size()), argv.data(),
                            argvlen.data()) != REDIS_OK) {
    if (fn == on_reply) delete static_cast<pending_command*>(privdata);
    return false;
  }
  if (expects_reply) {
    deadlines_.push_back(steady_clock::now() + opts_.command_timeout);
    arm_command_timer();
  }
  return true;
}

// One timer for all commands: it waits for the oldest unanswered one (replies come in order).
void redis_connection::arm_command_timer() {
  if (timer_armed_ || deadlines_.empty()) return;
  timer_armed_ = true;
  command_timer_.expires_at(deadlines_.front());
  command_timer_.async_wait(
      [weak = weak_from_this(), gen = generation_](boost::system::error_code ec) {
        auto self = weak.lock();
        if (!self || gen != self->generation_) return;
        self->timer_armed_ = false;
        if (ec) return;
        if (!self->deadlines_.empty() && steady_clock::now() >= self->deadlines_.front()) {
          return self->lose("command timeout");
        }
        self->arm_command_timer();  // the one it waited for was answered: wait for the next
      });
}

bool redis_connection::command(const std::vector<std::string>& args,
                               std::function<void(reply_view)> done) {
  if (state_ != state::ready) return false;
  return send_argv(args, on_reply, new pending_command{this, std::move(done), true}, true);
}

bool redis_connection::subscribe(const std::vector<std::string>& channels) {
  if (state_ != state::ready || channels.empty()) return false;
  std::vector<std::string> args{"SUBSCRIBE"};
  args.insert(args.end(), channels.begin(), channels.end());
  return send_argv(args, on_push_reply, this, false);
}

bool redis_connection::unsubscribe(const std::vector<std::string>& channels) {
  if (state_ != state::ready || channels.empty()) return false;
  std::vector<std::string> args{"UNSUBSCRIBE"};
  args.insert(args.end(), channels.begin(), channels.end());
  return send_argv(args, on_push_reply, this, false);
}

}  // namespace herald::redis
