#include "net/sse_session.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <type_traits>

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>

#include "herald/common/json_text.hpp"
#include "herald/protocol/client_frames.hpp"
#include "herald/protocol/sse.hpp"
#include "herald/routing/event.hpp"
#include "herald/ws/frame.hpp"
#include "herald/ws/handshake.hpp"
#include "herald/ws/utf8.hpp"
#include "net/websocket_session.hpp"
#include "net/worker.hpp"

namespace herald::net {

void sse_directory::add(const std::string& token, std::weak_ptr<sink> s) {
  std::lock_guard lock(mutex_);
  streams_[token] = std::move(s);
}

void sse_directory::remove(const std::string& token) {
  std::lock_guard lock(mutex_);
  streams_.erase(token);
}

std::shared_ptr<sse_directory::sink> sse_directory::find(const std::string& token) {
  std::lock_guard lock(mutex_);
  const auto it = streams_.find(token);
  return it == streams_.end() ? nullptr : it->second.lock();
}

namespace {

namespace cc = ws::close_code;
using protocol::sse::append_event;
using protocol::sse::decode_positions;
using protocol::sse::encode_positions;
using protocol::sse::query_values;

std::string json_string(std::string_view v) {
  std::string s = "\"";
  append_json_escaped(s, v);
  s += '"';
  return s;
}

// An unguessable session token: 24 random bytes, base64url.
std::string make_token() {
  unsigned char raw[24];
  random_bytes(raw, sizeof raw);
  std::string t = ws::base64_encode({reinterpret_cast<const char*>(raw), sizeof raw});
  for (char& c : t) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return t;
}

template <class Stream>
class sse_session final : public session_base, public sse_directory::sink {
 public:
  static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

  sse_session(Stream&& stream, connection_info info, admission slot, worker& w, server_context& ctx)
      : session_base(std::move(info)),
        stream_(std::move(stream)),
        slot_(std::move(slot)),
        worker_(w),
        ctx_(ctx) {}

  void start(sse_start st) {
    const auto now = worker_.now();
    last_activity_ = last_write_ = now;
    opened_ = steady_clock::now();
    rate_.start(ctx_.cfg.websocket.rate_limit, opened_);
    touch(info().connected_at);
    // "<connection id>.<secret>": any node can find the node holding it, only the holder can
    // check the secret.
    token_ = std::string(id().view()) + "." + make_token();
    std::string head =
        "HTTP/1.1 200 OK\r\nServer: herald\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        "Cache-Control: no-cache, no-store, no-transform\r\nX-Accel-Buffering: no\r\n"
        "Connection: close\r\n";
    if (!st.cors_origin.empty())
      head += "Access-Control-Allow-Origin: " + st.cors_origin + "\r\nVary: Origin\r\n";
    head += "\r\n";
    // EventSource's own reconnects: after a second, not its default three.
    head += "retry: 1000\n\n";
    pending_ = std::move(head);
    append_event(
        pending_, "session", {},
        R"({"connectionId":)" + json_string(id().view()) + R"(,"session":")" + token_ + "\"}");
    worker_.attach(*this);
    ctx_.registry.add(self());
    ctx_.sse->add(token_, std::static_pointer_cast<sse_directory::sink>(self()));
    auto& m = worker_.metrics();
    m.connections_open.add(1);
    m.connections_opened.add(1);
    m.sse_open.add(1);
    ctx_.log.info("connection.open", {{"connectionId", id().view()},
                                      {"sourceIp", info().source_ip()},
                                      {"userId", info().user_id()},
                                      {"worker", worker_.index()},
                                      {"tls", is_tls},
                                      {"transport", "sse"}});
    ctx_.handler->on_open(self());
    request_flush();
    do_read();
    if (ctx_.closing.load(std::memory_order_relaxed)) {
      return start_close(cc::going_away, drain_close_reason);
    }
    // Subscriptions: the channels the URL names, and those Last-Event-ID has positions for,
    // resumed from there.
    positions_ = decode_positions(st.last_event_id);
    auto channels = query_values(st.target, "channel");
    for (const auto& [channel, pos] : positions_) {
      if (std::find(channels.begin(), channels.end(), channel) == channels.end())
        channels.push_back(channel);
    }
    const auto& verb = ctx_.cfg.channels.subscribe_action;
    for (const auto& channel : channels) {
      if (state_ != state::open) return;
      std::string request =
          R"({"action":)" + json_string(verb) + R"(,"channel":)" + json_string(channel);
      if (const auto it = positions_.find(channel); it != positions_.end()) {
        request += R"(,"since":)" + std::to_string(it->second.offset) + R"(,"epoch":)" +
                   json_string(it->second.epoch);
      }
      request += "}";
      ctx_.handler->on_message(*this, request, false);
    }
  }

  // ---- connection ----

  send_result send(message_ptr payload, bool binary) override {
    if (worker_.in_this_thread()) return enqueue(std::move(payload), binary);
    worker_.post([s = self(), payload = std::move(payload), binary]() mutable {
      s->enqueue(std::move(payload), binary);
    });
    return send_result::queued;
  }

  void close(std::uint16_t code, std::string reason) override {
    worker_.post([s = self(), code, reason = std::move(reason)] { s->start_close(code, reason); });
  }

  void begin_request() override { ++inflight_; }
  void end_request() override { --inflight_; }

  // ---- sse_directory::sink ----

  void post(std::string body, http_responder done) override {
    worker_.post([s = self(), body = std::move(body), done = std::move(done)]() mutable {
      s->on_post(body, done);
    });
  }

  void end() override { close(cc::normal, "closed by client"); }

  // ---- session_base ----

  void tick(steady_clock::time_point now) override {
    if (state_ == state::closed) return;
    const auto& c = ctx_.cfg.websocket;
    if (!write_active_ && pending_.empty()) {
      // An idle stream holds no write buffers (they keep their capacity while it is busy).
      if (writing_.capacity() > 15) std::string().swap(writing_);
      if (pending_.capacity() > 15) std::string().swap(pending_);
    }
    if (write_active_ && now - write_started_ >= c.send_queue.write_timeout) {
      worker_.metrics().write_timeouts.add();
      return abort(cc::abnormal, "write timeout");
    }
    if (state_ == state::closing) {
      if (now - close_started_ >= c.close_timeout) abort(close_code_, close_reason_);
      return;
    }
    if (info().expires_at != 0 && now_ms() >= info().expires_at) {
      worker_.metrics().token_expiry_closes.add();
      return start_close(token_expired_code, "token expired");
    }
    if (c.max_duration.count() > 0 && now - opened_ >= c.max_duration) {
      return start_close(cc::going_away, "maximum connection duration reached");
    }
    if (c.idle_timeout.count() > 0 && now - last_activity_ >= c.idle_timeout) {
      return start_close(cc::going_away, "idle timeout");
    }
    if (now - last_write_ >= ctx_.cfg.sse.keepalive_interval && pending_.empty() &&
        !write_active_) {
      pending_ = ":\n\n";  // a comment: proxies see bytes, EventSource ignores it
      request_flush();
    }
  }

  void flush() override {
    flush_pending_ = false;
    do_write();
  }

  void shutdown(std::uint16_t code, std::string_view reason) override { start_close(code, reason); }

 private:
  enum class state : std::uint8_t { open, closing, closed };

  std::shared_ptr<sse_session> self() {
    return std::static_pointer_cast<sse_session>(shared_from_this());
  }

  // ---- client messages (POST) ----

  void on_post(const std::string& body, const http_responder& done) {
    if (state_ != state::open) {
      return done(json_error(http::status::not_found, "unknown_session",
                             "this stream is closed; open a new one"));
    }
    if (!ws::is_valid_utf8(body)) {
      return done(
          json_error(http::status::bad_request, "bad_request", "a message must be UTF-8 text"));
    }
    if (!rate_.take(ctx_.cfg.websocket.rate_limit)) {
      worker_.metrics().messages_throttled.add();
      const auto max = ctx_.cfg.websocket.rate_limit.max_violations;
      if (max > 0 && ++violations_ >= max) start_close(cc::policy_violation, "rate limit exceeded");
      auto res =
          json_error(http::status::too_many_requests, "too_many_requests", "Too many requests");
      res.set(http::field::retry_after, "1");
      return done(std::move(res));
    }
    if (inflight_ >= ctx_.cfg.routing.max_inflight_per_connection) {
      auto res = json_error(http::status::too_many_requests, "too_many_requests",
                            "too many messages in flight on this connection");
      res.set(http::field::retry_after, "1");
      return done(std::move(res));
    }
    worker_.metrics().messages_in.add();
    worker_.metrics().bytes_in.add(body.size());
    worker_.metrics().sse_posts.add();
    last_activity_ = worker_.now();
    touch(herald::now_ms());
    ctx_.handler->on_message(*this, body, false);
    done(json_response(http::status::accepted, R"({"ok":true})"));
  }

  // ---- reading: only to notice that the client went away ----

  void do_read() {
    if (state_ == state::closed) return;
    stream_.async_read_some(asio::buffer(discard_), [s = self()](error_code ec, std::size_t) {
      if (ec) return s->fail(ec, "read");
      s->do_read();  // anything sent on the stream's connection is ignored
    });
  }

  // ---- writing ----

  // Keeps the positions of history channels (what Last-Event-ID resumes from): a message's
  // offset, a resync's new start, or a fresh subscription's top. Returns whether they changed.
  bool track_position(const std::string& bytes) {
    if (bytes.find("\"offset\":") == std::string::npos) return false;
    const auto doc = nlohmann::json::parse(bytes, nullptr, false);
    if (!doc.is_object()) return false;
    const auto type = doc.find("type");
    const auto channel = doc.find("channel");
    const auto offset = doc.find("offset");
    const auto epoch = doc.find("epoch");
    if (type == doc.end() || channel == doc.end() || offset == doc.end() || epoch == doc.end() ||
        !type->is_string() || !channel->is_string() || !offset->is_number_unsigned() ||
        !epoch->is_string()) {
      return false;
    }
    const auto& t = type->get_ref<const std::string&>();
    const auto& name = channel->get_ref<const std::string&>();
    if (t == "subscribed" && positions_.contains(name)) return false;  // resuming: keep ours
    if (t != "message" && t != "resync" && t != "subscribed") return false;
    positions_[name] = {epoch->get<std::string>(), offset->get<std::uint64_t>()};
    return true;
  }

  send_result enqueue(message_ptr payload, bool binary) {
    if (state_ != state::open) return send_result::closing;
    const auto& q = ctx_.cfg.websocket.send_queue;
    if (queued_ + 1 > q.max_messages || pending_.size() + payload->size() > q.max_bytes)
      return overflow();
    const std::size_t before = pending_.size();
    if (binary) {
      append_event(pending_, "binary", {}, ws::base64_encode(payload->bytes()));
    } else {
      const bool moved = track_position(payload->bytes());
      append_event(pending_, {}, moved ? encode_positions(positions_) : std::string(),
                   payload->bytes());
    }
    ++queued_;
    queued_bytes_ += pending_.size() - before;
    last_activity_ = worker_.now();
    touch(worker_.now_ms());
    request_flush();
    return send_result::queued;
  }

  send_result overflow() {
    auto& m = worker_.metrics();
    if (ctx_.cfg.websocket.send_queue.policy == overflow_policy::drop) {
      m.send_queue_dropped.add();
      return send_result::dropped;
    }
    m.send_queue_overflow_closes.add();
    ctx_.log.warn("connection.send_queue_full", {{"connectionId", id().view()},
                                                 {"policy", "close"},
                                                 {"queuedMessages", queued_},
                                                 {"transport", "sse"}});
    pending_.clear();  // what is queued would only arrive late
    start_close(cc::policy_violation, "send queue overflow");
    return send_result::closing;
  }

  void request_flush() {
    if (write_active_ || flush_pending_ || state_ == state::closed) return;
    flush_pending_ = true;
    worker_.schedule_flush(self());
  }

  void do_write() {
    if (write_active_ || state_ == state::closed) return;
    if (pending_.empty()) {
      if (state_ == state::closing) finish();
      return;
    }
    writing_.swap(pending_);
    pending_.clear();
    written_messages_ = queued_;
    queued_ = 0;
    queued_bytes_ = 0;
    write_active_ = true;
    write_started_ = worker_.now();
    worker_.metrics().socket_writes.add();
    asio::async_write(stream_, asio::buffer(writing_),
                      [s = self()](error_code ec, std::size_t n) { s->on_write(ec, n); });
  }

  void on_write(error_code ec, std::size_t bytes) {
    write_active_ = false;
    if (ec) return fail(ec, "write");
    auto& m = worker_.metrics();
    m.bytes_out.add(bytes);
    m.messages_out.add(written_messages_);
    writing_.clear();
    last_write_ = worker_.now();
    do_write();
  }

  // ---- closing: a last "close" event with the code and reason, then the end of the stream ----

  void start_close(std::uint16_t code, std::string_view reason) {
    if (state_ != state::open) return;
    state_ = state::closing;
    close_code_ = code;
    close_reason_ = std::string(reason);
    close_started_ = worker_.now();
    append_event(
        pending_, "close", {},
        R"({"code":)" + std::to_string(code) + R"(,"reason":)" + json_string(reason) + "}");
    request_flush();
  }

  void abort(std::uint16_t code, std::string_view reason) {
    if (state_ == state::open) {
      close_code_ = code;
      close_reason_ = std::string(reason);
    }
    finish();
  }

  void fail(error_code ec, const char* what) {
    if (ec == asio::error::operation_aborted || state_ == state::closed) return;
    if (state_ == state::closing) return finish();
    if (is_disconnect(ec)) return abort(cc::abnormal, "connection lost");
    ctx_.log.debug("connection.io_error",
                   {{"connectionId", id().view()}, {"op", what}, {"error", ec.message()}});
    abort(cc::abnormal, what);
  }

  void finish() {
    if (state_ == state::closed) return;
    state_ = state::closed;
    error_code ignored;
    stream_.lowest_layer().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.lowest_layer().close(ignored);
    worker_.detach(*this);
    ctx_.registry.remove(*this);
    ctx_.sse->remove(token_);
    slot_.release();
    auto& m = worker_.metrics();
    m.connections_open.add(-1);
    m.sse_open.add(-1);
    m.connections_closed.add();
    m.count_close(close_code_);
    const auto lived =
        std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - opened_);
    ctx_.log.info("connection.close", {{"connectionId", id().view()},
                                       {"code", close_code_},
                                       {"reason", close_reason_},
                                       {"duration_ms", lived.count()},
                                       {"transport", "sse"}});
    ctx_.handler->on_close(*this, close_code_, close_reason_);
  }

  Stream stream_;
  admission slot_;
  worker& worker_;
  server_context& ctx_;
  std::string token_;
  std::string pending_;  // events waiting to be written
  std::string writing_;  // events being written
  std::size_t queued_ = 0;
  std::size_t queued_bytes_ = 0;
  std::size_t written_messages_ = 0;
  protocol::sse::positions positions_;
  std::array<char, 256> discard_{};
  message_rate rate_;
  std::size_t violations_ = 0;
  std::uint32_t inflight_ = 0;
  steady_clock::time_point opened_, last_activity_, last_write_, write_started_, close_started_;
  std::string close_reason_;
  std::uint16_t close_code_ = cc::abnormal;
  state state_ = state::open;
  bool write_active_ = false;
  bool flush_pending_ = false;
};

}  // namespace

template <class Stream>
void start_sse_session(Stream stream, connection_info info, admission slot, sse_start start,
                       worker& w, server_context& ctx) {
  auto session = std::make_shared<sse_session<Stream>>(std::move(stream), std::move(info),
                                                       std::move(slot), w, ctx);
  session->start(std::move(start));
}

template void start_sse_session<plain_stream>(plain_stream, connection_info, admission, sse_start,
                                              worker&, server_context&);
template void start_sse_session<tls_stream>(tls_stream, connection_info, admission, sse_start,
                                            worker&, server_context&);

namespace {

// The stream here, if this node holds it: the message is handed to it, or the stream ended.
bool sse_local(server_context& ctx, const std::string& token, std::string body, bool end,
               http_responder& done) {
  const auto stream = ctx.sse->find(token);
  if (!stream) return false;
  if (end) {
    stream->end();
    done(http_response{http::status::no_content, 11});
  } else {
    stream->post(std::move(body), std::move(done));
  }
  return true;
}

http_response unknown_session() {
  return json_error(http::status::not_found, "unknown_session",
                    "no open stream has this session; open a new one");
}

}  // namespace

void sse_post(server_context& ctx, const std::string& token, std::string body, bool end,
              http_responder done) {
  if (token.empty()) {
    return done(json_error(http::status::bad_request, "bad_request",
                           "the Herald-Session header names the stream"));
  }
  if (body.size() > ctx.cfg.websocket.max_message_bytes) {
    return done(json_error(http::status::payload_too_large, "message_too_large",
                           "messages are limited to " +
                               std::to_string(ctx.cfg.websocket.max_message_bytes) + " bytes"));
  }
  if (sse_local(ctx, token, body, end, done)) return;
  if (!ctx.forward_post || token.find('.') == std::string::npos) return done(unknown_session());
  ctx.forward_post(token, std::move(body), end, [done](int status, std::string answer) {
    if (answer.empty() && status == 404) return done(unknown_session());
    if (answer.empty() && status == 503) {
      return done(json_error(http::status::service_unavailable, "unavailable",
                             "the node holding this stream did not answer; retry"));
    }
    if (status == 204) return done(http_response{http::status::no_content, 11});
    done(json_response(static_cast<http::status>(status), std::move(answer)));
  });
}

void connect_sse_to_backplane(server_context& ctx, backplane& b) {
  // What other nodes forward: only streams held here (never forwarded again).
  b.set_post_handler(
      [&ctx](std::string token, std::string body, bool end, backplane::post_reply done) {
        http_responder reply = [done](http_response&& res) {
          done(res.result_int(), std::move(res.body()));
        };
        if (!sse_local(ctx, token, std::move(body), end, reply)) done(404, {});
      });
  ctx.forward_post = [&b](std::string token, std::string body, bool end,
                          std::function<void(int, std::string)> done) {
    // (A loop, not find(): GCC 12 warns falsely about memchr on a by-value string here.)
    std::size_t dot = 0;
    while (dot < token.size() && token[dot] != '.')
      ++dot;
    std::string id(token, 0, dot);
    b.locate(id, [&b, token = std::move(token), body = std::move(body), end,
                  done = std::move(done)](std::optional<remote_connection> where) mutable {
      if (!where) return done(404, {});
      b.post_remote(where->node, std::move(token), std::move(body), end, std::move(done));
    });
  };
}

}  // namespace herald::net
