#include "redis/redis_connection.hpp"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <openssl/ssl.h>

#include <charconv>
#include <cstdlib>
#include <cstring>

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/write.hpp>

namespace herald::redis {
namespace {

using error_code = boost::system::error_code;

constexpr std::size_t read_chunk = 16 * 1024;

bool is_push(const redisReply* r) {
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3) return false;
  const redisReply* kind = r->element[0];
  if (!kind || (kind->type != REDIS_REPLY_STRING && kind->type != REDIS_REPLY_STATUS)) return false;
  const std::string_view k(kind->str, kind->len);
  return k == "message" || k == "pmessage" || k == "smessage" || k == "subscribe" ||
         k == "unsubscribe" || k == "psubscribe" || k == "punsubscribe" || k == "ssubscribe" ||
         k == "sunsubscribe";
}

struct reply_deleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};

// "certificate verify failed" rather than Asio's "... (SSL routines)" with a category prefix.
std::string describe(const error_code& ec) {
  std::string m = ec.message();
  if (const auto paren = m.find(" ("); paren != std::string::npos) m.resize(paren);
  return m;
}

}  // namespace

std::shared_ptr<asio::ssl::context> make_client_tls(const redis_tls_config& cfg) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1);
  const auto use = [](const char* key, const std::string& file, auto&& load) {
    error_code ec;
    load(ec);
    if (ec) throw config_error(key, "cannot use \"" + file + "\": " + describe(ec));
  };
  if (cfg.ca_file.empty()) {
    use("redis.tls.ca_file", "the system's trust store",
        [&](error_code& ec) { ctx->set_default_verify_paths(ec); });
  } else {
    use("redis.tls.ca_file", cfg.ca_file,
        [&](error_code& ec) { ctx->load_verify_file(cfg.ca_file, ec); });
  }
  if (!cfg.cert_file.empty()) {
    use("redis.tls.cert_file", cfg.cert_file,
        [&](error_code& ec) { ctx->use_certificate_chain_file(cfg.cert_file, ec); });
    use("redis.tls.key_file", cfg.key_file, [&](error_code& ec) {
      ctx->use_private_key_file(cfg.key_file, asio::ssl::context::pem, ec);
    });
  }
  return ctx;
}

redis_connection::redis_connection(asio::io_context& ioc, options opts, callbacks cb)
    : ioc_(ioc),
      opts_(std::move(opts)),
      cb_(std::move(cb)),
      connect_timer_(ioc),
      command_timer_(ioc),
      in_(read_chunk) {}

redis_connection::~redis_connection() {
  lost_ = true;  // a destructor reports nothing
  close_socket();
  if (reader_) redisReaderFree(reader_);
}

void redis_connection::start() {
  if (sentinel_) sentinel_->stop();  // a lookup of an earlier start() must not linger
  ++generation_;
  lost_ = false;
  writing_ = timer_armed_ = subscribed_ = sharded_ = false;
  pending_.clear();
  out_.clear();
  writing_buf_.clear();
  if (reader_) redisReaderFree(reader_);
  reader_ = redisReaderCreate();
  if (!reader_) return lose("cannot allocate a RESP reader");
  state_ = state::connecting;
  target_ = opts_.endpoint;
  if (!opts_.sentinels.empty()) return ask_sentinel(0, {});
  connect();
}

void redis_connection::ask_sentinel(std::size_t tried, std::string errors) {
  if (tried == opts_.sentinels.size()) {
    return lose("no Sentinel named the primary of " + opts_.master_name + " (" + errors + ")");
  }
  const std::size_t i = (preferred_sentinel_ + tried) % opts_.sentinels.size();
  options o;
  o.endpoint = opts_.sentinels[i];
  o.connect_timeout = o.command_timeout = opts_.sentinel_timeout;
  o.tls = opts_.tls;
  o.tls_verify = opts_.tls_verify;
  callbacks cb;
  const auto next = [weak = weak_from_this(), gen = generation_, tried, errors,
                     where = o.endpoint.describe()](const std::string& why) {
    auto self = weak.lock();
    if (!self || gen != self->generation_ || self->state_ != state::connecting) return;
    if (self->sentinel_) self->sentinel_->stop();
    // Asked again on a fresh turn: this may run inside the Sentinel connection's callback.
    asio::post(self->ioc_, [weak, gen, tried,
                            errors = errors + (errors.empty() ? "" : "; ") + where + ": " + why] {
      auto s = weak.lock();
      if (s && gen == s->generation_ && s->state_ == state::connecting)
        s->ask_sentinel(tried + 1, errors);
    });
  };
  cb.on_lost = next;
  cb.on_ready = [weak = weak_from_this(), gen = generation_, i, next] {
    auto self = weak.lock();
    if (!self || gen != self->generation_ || !self->sentinel_) return;
    self->sentinel_->command(
        {"SENTINEL", "get-master-addr-by-name", self->opts_.master_name},
        [weak, gen, i, next](reply_view r) {
          auto s = weak.lock();
          if (!s || gen != s->generation_ || s->state_ != state::connecting || !r) return;
          int port = 0;
          if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
              r->element[0]->type == REDIS_REPLY_STRING &&
              r->element[1]->type == REDIS_REPLY_STRING) {
            port = std::atoi(std::string(r->element[1]->str, r->element[1]->len).c_str());
          }
          if (port <= 0 || port > 65535) {
            return next(r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len)
                                                     : "does not know " + s->opts_.master_name);
          }
          s->target_.host.assign(r->element[0]->str, r->element[0]->len);
          s->target_.port = port;
          s->target_.unix_path.clear();
          s->preferred_sentinel_ = i;
          s->sentinel_->stop();
          asio::post(s->ioc_, [weak, gen] {
            auto t = weak.lock();
            if (!t || gen != t->generation_ || t->state_ != state::connecting) return;
            t->sentinel_.reset();
            t->connect();
          });
        });
  };
  sentinel_ = std::make_shared<redis_connection>(ioc_, std::move(o), std::move(cb));
  sentinel_->start();
}

void redis_connection::connect() {
  connect_timer_.expires_after(opts_.connect_timeout);
  connect_timer_.async_wait([weak = weak_from_this(), gen = generation_](error_code ec) {
    auto self = weak.lock();
    if (ec || !self || gen != self->generation_) return;
    if (self->state_ == state::connecting || self->state_ == state::handshake)
      self->lose("connect timeout");
  });
  io_ = std::make_shared<transport>(ioc_);
  const auto& ep = target_;
  if (!ep.unix_path.empty()) {
    io_->local_socket.emplace(ioc_);
    io_->local_socket->async_connect(
        asio::local::stream_protocol::endpoint(ep.unix_path),
        [self = shared_from_this(), io = io_, gen = generation_](error_code ec) {
          if (gen != self->generation_ || self->state_ != state::connecting) return;
          if (ec) return self->lose("connect: " + ec.message());
          self->state_ = state::handshake;
          self->read();
          self->handshake();
        });
    return;
  }
  io_->resolver.async_resolve(
      ep.host, std::to_string(ep.port),
      [self = shared_from_this(), io = io_, gen = generation_](
          error_code ec, const tcp::resolver::results_type& r) {
        if (gen != self->generation_ || self->state_ != state::connecting) return;
        if (ec) return self->lose("resolve " + self->target_.host + ": " + ec.message());
        self->connect_tcp(r);
      });
}

void redis_connection::connect_tcp(const tcp::resolver::results_type& addresses) {
  io_->plain.emplace(ioc_);
  asio::async_connect(*io_->plain, addresses,
                      [self = shared_from_this(), io = io_, gen = generation_](
                          error_code ec, const tcp::endpoint&) {
                        if (gen != self->generation_ || self->state_ != state::connecting) return;
                        if (ec) return self->lose("connect: " + ec.message());
                        error_code ignored;
                        io->plain->set_option(tcp::no_delay(true), ignored);
                        if (self->opts_.tls) return self->tls_handshake();
                        self->state_ = state::handshake;
                        self->read();
                        self->handshake();
                      });
}

void redis_connection::tls_handshake() {
  auto& tls = io_->secure.emplace(std::move(*io_->plain), *opts_.tls);
  io_->plain.reset();
  const std::string& name = opts_.tls_server_name.empty() ? target_.host : opts_.tls_server_name;
  // SNI for names only (an address in SNI is not allowed by RFC 6066).
  error_code not_address;
  asio::ip::make_address(name, not_address);
  if (not_address) {
    // SSL_set_tlsext_host_name, without its C cast.
    SSL_ctrl(tls.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(name.c_str()));
  }
  if (opts_.tls_verify) {
    tls.set_verify_mode(asio::ssl::verify_peer);
    tls.set_verify_callback(asio::ssl::host_name_verification(name));
  } else {
    tls.set_verify_mode(asio::ssl::verify_none);
  }
  tls.async_handshake(asio::ssl::stream_base::client, [self = shared_from_this(), io = io_,
                                                       gen = generation_, name](error_code ec) {
    if (gen != self->generation_ || self->state_ != state::connecting) return;
    if (ec) {
      const long verify = SSL_get_verify_result(io->secure->native_handle());
      std::string why = "TLS handshake with " + name + ": " + describe(ec);
      if (why.ends_with("certificate verify failed")) {
        // The chain was fine, our name check was not.
        const bool wrong_name = verify == X509_V_OK || verify == X509_V_ERR_UNSPECIFIED ||
                                verify == X509_V_ERR_HOSTNAME_MISMATCH ||
                                verify == X509_V_ERR_IP_ADDRESS_MISMATCH;
        why += wrong_name ? " (the certificate is not for this name; see "
                            "redis.tls.server_name)"
                          : " (" + std::string(X509_verify_cert_error_string(verify)) +
                                "; see redis.tls.ca_file)";
      }
      return self->lose(std::move(why));
    }
    self->state_ = state::handshake;
    self->read();
    self->handshake();
  });
}

void redis_connection::stop() {
  if (sentinel_) sentinel_->stop();
  sentinel_.reset();
  lost_ = true;
  state_ = state::closed;
  connect_timer_.cancel();
  command_timer_.cancel();
  ++generation_;  // handlers still queued for this connection do nothing
  close_socket();
  fail_pending();
}

void redis_connection::close_socket() {
  writing_ = false;
  if (!io_) return;
  error_code ignored;
  io_->resolver.cancel();
  if (io_->secure) io_->secure->lowest_layer().close(ignored);
  if (io_->plain) io_->plain->close(ignored);
  if (io_->local_socket) io_->local_socket->close(ignored);
  io_.reset();  // the operations cancelled above keep it until they have completed
}

void redis_connection::fail_pending() {
  // Callbacks may start new commands on another connection, or stop this one: take the list.
  auto failed = std::move(pending_);
  pending_.clear();
  out_.clear();
  for (auto& p : failed) {
    if (p.done) p.done(nullptr);
  }
}

void redis_connection::lose(std::string why) {
  if (sentinel_) sentinel_->stop();
  state_ = state::closed;
  connect_timer_.cancel();
  command_timer_.cancel();
  close_socket();  // what is in flight completes with operation_aborted and does nothing
  if (lost_) return;
  lost_ = true;
  // Reported on a fresh turn of the loop: the caller may be a reply callback of ours.
  asio::post(ioc_, [weak = weak_from_this(), gen = generation_, why = std::move(why)] {
    auto self = weak.lock();
    if (!self || gen != self->generation_) return;
    self->fail_pending();
    if (self->cb_.on_lost) self->cb_.on_lost(why);
  });
}

// ---- reading ----

void redis_connection::read() {
  auto handler = [self = shared_from_this(), io = io_, gen = generation_](error_code ec,
                                                                          std::size_t n) {
    if (gen != self->generation_ || self->state_ == state::closed) return;
    if (ec) {
      return self->lose(ec == asio::error::eof ? std::string("disconnected")
                                               : "connection lost: " + describe(ec));
    }
    self->on_data(n);
  };
  with_stream([&](auto& s) { s.async_read_some(asio::buffer(in_), std::move(handler)); });
}

void redis_connection::on_data(std::size_t n) {
  if (redisReaderFeed(reader_, in_.data(), n) != REDIS_OK)
    return lose(std::string("RESP reader: ") + reader_->errstr);
  const unsigned gen = generation_;
  for (;;) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader_, &raw) != REDIS_OK)
      return lose(std::string("protocol error: ") + reader_->errstr);
    if (!raw) break;
    std::unique_ptr<redisReply, reply_deleter> reply(static_cast<redisReply*>(raw));
    dispatch(reply.get());
    // A callback may have stopped or restarted this connection.
    if (gen != generation_ || state_ == state::closed) return;
  }
  read();
}

void redis_connection::dispatch(redisReply* reply) {
  if (subscribed_ && is_push(reply)) {
    if (cb_.on_push) cb_.on_push(reply);
    return;
  }
  // An error answering a (S)SUBSCRIBE (e.g. -MOVED: the slot is elsewhere now) goes to the
  // subscriber too: nobody waits for it as a reply.
  if (subscribed_ && sharded_ && pending_.empty() && reply->type == REDIS_REPLY_ERROR) {
    if (cb_.on_push) cb_.on_push(reply);
    return;
  }
  if (pending_.empty()) return lose("a reply nobody asked for");
  auto done = std::move(pending_.front().done);
  pending_.pop_front();
  if (done) done(reply);
  // The server was demoted to a replica under us (a failover): connect again, to the primary.
  if (reply->type == REDIS_REPLY_ERROR &&
      std::string_view(reply->str, reply->len).starts_with("READONLY"))
    lose("READONLY: " + target_.describe() + " is a replica now");
}

// ---- writing ----

void append_command(std::string& out, const std::vector<std::string>& args) {
  // RESP: *<count>\r\n, then $<length>\r\n<bytes>\r\n per argument. Written here rather than
  // by hiredis's redisFormatCommandArgv, which formats every length with sprintf and allocates
  // twice per command: that was a fifth of the instructions of a connect (the directory's HSET).
  std::size_t size = 16;
  for (const auto& a : args)
    size += a.size() + 24;
  out.reserve(out.size() + size);
  char digits[24];
  const auto number = [&](char kind, std::size_t n) {
    out.push_back(kind);
    const auto r = std::to_chars(digits, digits + sizeof digits, n);
    out.append(digits, r.ptr);
    out.append("\r\n", 2);
  };
  number('*', args.size());
  for (const auto& a : args) {
    number('$', a.size());
    out.append(a);
    out.append("\r\n", 2);
  }
}

bool redis_connection::send(const std::vector<std::string>& args,
                            std::function<void(reply_view)> done, bool expects_reply) {
  if (!open()) return false;
  if (expects_reply && pending_.size() >= opts_.max_pending) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  append_command(out_, args);
  if (expects_reply) {
    pending_.push_back({std::move(done), steady_clock::now() + opts_.command_timeout});
    arm_command_timer();
  }
  flush();
  return true;
}

void redis_connection::flush() {
  if (writing_ || out_.empty() || !open()) return;
  writing_ = true;
  writing_buf_.clear();
  writing_buf_.swap(out_);  // everything queued so far leaves in one write
  auto handler = [self = shared_from_this(), io = io_, gen = generation_](error_code ec,
                                                                          std::size_t) {
    if (gen != self->generation_) return;
    self->writing_ = false;
    if (ec) return self->lose("write: " + describe(ec));
    self->flush();
  };
  with_stream(
      [&](auto& s) { asio::async_write(s, asio::buffer(writing_buf_), std::move(handler)); });
}

// One timer for all commands: it waits for the oldest unanswered one (replies come in order).
void redis_connection::arm_command_timer() {
  if (timer_armed_ || pending_.empty()) return;
  timer_armed_ = true;
  command_timer_.expires_at(pending_.front().deadline);
  command_timer_.async_wait([weak = weak_from_this(), gen = generation_](error_code ec) {
    auto self = weak.lock();
    if (!self || gen != self->generation_) return;
    self->timer_armed_ = false;
    if (ec) return;
    if (!self->pending_.empty() && steady_clock::now() >= self->pending_.front().deadline)
      return self->lose("command timeout");
    self->arm_command_timer();  // the one it waited for was answered: wait for the next
  });
}

// ---- commands ----

void redis_connection::handshake() {
  // AUTH and SELECT (or a PING), pipelined, then ready once the last is answered.
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
  // Through Sentinel: the server it named must still be the primary (a stale Sentinel, or a
  // failover since it answered).
  if (!opts_.sentinels.empty()) steps.push_back({"ROLE"});
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const bool last = i + 1 == steps.size();
    const std::string what = steps[i][0];
    const bool sent = send(
        steps[i],
        [this, what, last, gen = generation_](reply_view r) {
          if (!r || gen != generation_ || state_ != state::handshake) return;
          if (r->type == REDIS_REPLY_ERROR) return lose(what + ": " + std::string(r->str, r->len));
          if (what == "ROLE") {
            const std::string role = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                                             r->element[0]->type == REDIS_REPLY_STRING
                                         ? std::string(r->element[0]->str, r->element[0]->len)
                                         : std::string("unknown");
            if (role != "master") {
              return lose(target_.describe() + " is not the primary of " + opts_.master_name +
                          " (ROLE: " + role + ")");
            }
          }
          if (!last) return;
          state_ = state::ready;
          connect_timer_.cancel();
          if (cb_.on_ready) cb_.on_ready();
        },
        true);
    if (!sent) return lose("cannot send " + what);
  }
}

bool redis_connection::command(const std::vector<std::string>& args,
                               std::function<void(reply_view)> done) {
  if (state_ != state::ready) return false;
  return send(args, std::move(done), true);
}

bool redis_connection::subscribe(const std::vector<std::string>& channels, bool sharded) {
  if (state_ != state::ready || channels.empty()) return false;
  std::vector<std::string> args{sharded ? "SSUBSCRIBE" : "SUBSCRIBE"};
  args.insert(args.end(), channels.begin(), channels.end());
  subscribed_ = true;
  sharded_ = sharded_ || sharded;
  return send(args, {}, false);
}

bool redis_connection::unsubscribe(const std::vector<std::string>& channels, bool sharded) {
  if (state_ != state::ready || channels.empty()) return false;
  std::vector<std::string> args{sharded ? "SUNSUBSCRIBE" : "UNSUBSCRIBE"};
  args.insert(args.end(), channels.begin(), channels.end());
  return send(args, {}, false);
}

}  // namespace herald::redis
