#include "redis/redis_connection.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <boost/asio/post.hpp>

#include <charconv>

namespace herald::redis {

// ---- endpoint ---------------------------------------------------------------------------------

namespace {

bool parse_int(std::string_view s, int& out, int min, int max) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v < min || v > max) return false;
  out = v;
  return true;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      auto [ptr, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec == std::errc() && ptr == s.data() + i + 3) {
        out += static_cast<char>(v);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

}  // namespace

std::optional<endpoint> endpoint::parse(std::string_view url, std::string* error) {
  const auto fail = [&](std::string why) -> std::optional<endpoint> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  endpoint ep;
  if (url.starts_with("unix://") || url.starts_with("unix:/")) {
    url.remove_prefix(url.starts_with("unix://") ? 7 : 5);
    const auto q = url.find('?');
    ep.unix_path = std::string(url.substr(0, q));
    if (ep.unix_path.empty() || ep.unix_path.front() != '/')
      return fail("expected unix:///absolute/path");
    if (q != std::string_view::npos) {
      const std::string_view query = url.substr(q + 1);
      if (!query.starts_with("db=") || !parse_int(query.substr(3), ep.db, 0, 1000)) {
        return fail("the only query parameter is db=N");
      }
    }
    return ep;
  }
  if (url.starts_with("rediss://"))
    return fail("TLS to Redis (rediss://) is not supported by this build");
  if (!url.starts_with("redis://")) return fail("expected redis://host:port/db or unix:///path");
  url.remove_prefix(8);
  const auto slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos && slash + 1 < url.size()) {
    if (!parse_int(url.substr(slash + 1), ep.db, 0, 1000))
      return fail("the database must be a number");
  }
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      ep.password = percent_decode(userinfo);  // redis://secret@host (password only)
    } else {
      ep.username = percent_decode(userinfo.substr(0, colon));
      ep.password = percent_decode(userinfo.substr(colon + 1));
    }
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return fail("unterminated [ipv6] host");
    ep.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return fail("expected :port after the host");
      port = authority.substr(close + 2);
    }
  } else {
    const auto colon = authority.rfind(':');
    ep.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (ep.host.empty()) return fail("missing host");
  if (!port.empty() && !parse_int(port, ep.port, 1, 65535))
    return fail("the port must be 1 to 65535");
  return ep;
}

std::string endpoint::describe() const {
  std::string out = unix_path.empty()
                        ? "redis://" +
                              (host.find(':') != std::string::npos ? "[" + host + "]" : host) +
                              ":" + std::to_string(port)
                        : "unix://" + unix_path;
  if (db != 0) out += unix_path.empty() ? "/" + std::to_string(db) : "?db=" + std::to_string(db);
  return out;
}

// ---- connection -------------------------------------------------------------------------------

namespace {

// A command waiting for its reply (owned by hiredis until the callback).
struct pending_command {
  connection* owner;
  std::function<void(reply_view)> done;
  bool expects_reply;
};

}  // namespace

connection::connection(asio::io_context& ioc, options opts, callbacks cb)
    : ioc_(ioc),
      opts_(std::move(opts)),
      cb_(std::move(cb)),
      connect_timer_(ioc),
      command_timer_(ioc) {}

connection::~connection() {
  lost_ = true;  // a destructor reports nothing
  free_context();
}

void connection::start() {
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

void connection::stop() {
  lost_ = true;
  state_ = state::closed;
  connect_timer_.cancel();
  command_timer_.cancel();
  free_context();
}

void connection::free_context() {
  if (!ac_) return;
  redisAsyncContext* ac = ac_;
  redisAsyncFree(ac);  // fails pending commands, runs the cleanup hook (ac_ = nullptr)
  ac_ = nullptr;
}

void connection::lose(std::string why) {
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

void connection::hook_add_read(void* p) {
  auto* self = static_cast<connection*>(p);
  self->want_read_ = true;
  self->wait_readable();
}

void connection::hook_del_read(void* p) {
  static_cast<connection*>(p)->want_read_ = false;
}

void connection::hook_add_write(void* p) {
  auto* self = static_cast<connection*>(p);
  self->want_write_ = true;
  self->wait_writable();
}

void connection::hook_del_write(void* p) {
  static_cast<connection*>(p)->want_write_ = false;
}

void connection::hook_cleanup(void* p) {
  auto* self = static_cast<connection*>(p);
  // hiredis is about to close the fd and free the context: let go of both.
  if (self->fd_) {
    self->fd_->release();  // cancels our waits without closing the fd
    self->fd_.reset();
  }
  self->want_read_ = self->want_write_ = false;
  self->ac_ = nullptr;
}

void connection::wait_readable() {
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

void connection::wait_writable() {
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

void connection::on_connect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<connection*>(ac->data);
  if (status != REDIS_OK) {
    // hiredis frees the context right after this callback.
    return self->lose(std::string("connect: ") + (ac->errstr[0] ? ac->errstr : "failed"));
  }
  self->state_ = state::handshake;
  self->handshake();
}

void connection::on_disconnect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<connection*>(ac->data);
  // hiredis frees the context right after this callback.
  self->lose(status == REDIS_OK ? "disconnected"
                                : std::string(ac->errstr[0] ? ac->errstr : "connection lost"));
}

void connection::on_reply(redisAsyncContext*, void* reply, void* privdata) {
  std::unique_ptr<pending_command> cmd(static_cast<pending_command*>(privdata));
  connection* self = cmd->owner;
  if (cmd->expects_reply && !self->deadlines_.empty()) self->deadlines_.pop_front();
  if (cmd->done) cmd->done(static_cast<redisReply*>(reply));
}

void connection::on_push_reply(redisAsyncContext*, void* reply, void* privdata) {
  auto* self = static_cast<connection*>(privdata);
  if (reply && self->cb_.on_push) self->cb_.on_push(static_cast<redisReply*>(reply));
}

// ---- commands ----

void connection::handshake() {
  // AUTH and SELECT, one after the other, then ready.
  std::vector<std::vector<std::string>> steps;
  const auto& ep = opts_.endpoint;
  if (!ep.password.empty()) {
    steps.push_back(ep.username.empty()
                        ? std::vector<std::string>{"AUTH", ep.password}
                        : std::vector<std::string>{"AUTH", ep.username, ep.password});
  }
  if (ep.db != 0) steps.push_back({"SELECT", std::to_string(ep.db)});
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

bool connection::send_argv(const std::vector<std::string>& args,
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
void connection::arm_command_timer() {
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

bool connection::command(const std::vector<std::string>& args,
                         std::function<void(reply_view)> done) {
  if (state_ != state::ready) return false;
  return send_argv(args, on_reply, new pending_command{this, std::move(done), true}, true);
}

bool connection::subscribe(const std::vector<std::string>& channels) {
  if (state_ != state::ready || channels.empty()) return false;
  std::vector<std::string> args{"SUBSCRIBE"};
  args.insert(args.end(), channels.begin(), channels.end());
  return send_argv(args, on_push_reply, this, false);
}

bool connection::unsubscribe(const std::vector<std::string>& channels) {
  if (state_ != state::ready || channels.empty()) return false;
  std::vector<std::string> args{"UNSUBSCRIBE"};
  args.insert(args.end(), channels.begin(), channels.end());
  return send_argv(args, on_push_reply, this, false);
}

}  // namespace herald::redis
