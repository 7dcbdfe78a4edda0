#include "net/websocket_session.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <span>
#include <type_traits>
#include <vector>

#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>

#include "herald/protocol/client_frames.hpp"
#include "herald/ws/handshake.hpp"
#include "net/server_context.hpp"
#include "net/worker.hpp"

namespace herald::net {
namespace {

namespace cc = ws::close_code;

enum class frame_kind : std::uint8_t { data, ping, pong, close };

// One frame waiting to be written: its header and a payload shared with other recipients
// (the message's bytes, or its compressed form, which the message owns).
struct outbound {
  message_ptr message;
  std::string_view payload;
  std::array<std::uint8_t, 10> header{};
  std::uint8_t header_len = 0;
  frame_kind kind = frame_kind::data;

  std::size_t size() const { return header_len + payload.size(); }
};

outbound make_frame(ws::opcode op, message_ptr message, frame_kind kind, std::string_view payload,
                    bool compressed = false) {
  outbound o;
  o.header_len = static_cast<std::uint8_t>(
      ws::encode_header(o.header.data(), op, payload.size(), true, compressed));
  o.payload = payload;
  o.message = std::move(message);
  o.kind = kind;
  return o;
}

outbound make_frame(ws::opcode op, message_ptr message, frame_kind kind) {
  const std::string_view bytes = message->bytes();
  return make_frame(op, std::move(message), kind, bytes);
}

template <class Stream>
class websocket_session final : public session_base, public ws::frame_handler {
 public:
  static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;
  static constexpr std::size_t max_iov = IOV_MAX < 1024 ? IOV_MAX : 1024;
  // Records read per readiness event before yielding to the worker's other connections.
  static constexpr int max_tls_reads = 16;

  // Streams leave Asio at the upgrade: the worker's epoll set watches the descriptor
  // (worker::watch). A plain session reads and writes it with recv/sendmsg, a TLS session with
  // SSL_read/SSL_write on the SSL object it took over (OpenSSL does the socket calls).
  websocket_session(Stream&& stream, connection_info info, admission slot, int deflate_bits,
                    worker& w, server_context& ctx)
      : session_base(std::move(info)),
        slot_(std::move(slot)),
        worker_(w),
        ctx_(ctx),
        decoder_({ctx.cfg.websocket.max_frame_bytes, ctx.cfg.websocket.max_message_bytes, true,
                  deflate_bits != 0}),
        deflate_bits_(static_cast<std::uint8_t>(deflate_bits)) {
    if constexpr (is_tls) {
      const auto parts = stream.release();
      fd_ = parts.fd;
      tls_.ssl = parts.ssl;
    } else {
      error_code ec;
      const int fd = stream.release(ec);  // leaves Asio's reactor; we close it from now on
      fd_ = ec ? -1 : fd;
    }
  }

  ~websocket_session() override {
    if (fd_ >= 0) ::close(fd_);
    if constexpr (is_tls) {
      if (tls_.ssl != nullptr) SSL_free(tls_.ssl);
    }
  }

  void start(std::string initial) {
    const auto now = worker_.now();
    last_activity_ = last_received_ = now;
    opened_ = steady_clock::now();  // exact: connection.close reports duration_ms from it
    rate_.start(ctx_.cfg.websocket.rate_limit, steady_clock::now());
    touch(info().connected_at);
    // The socket is already unusable when any of this fails; nothing was registered yet.
    int on = 1;
    if (fd_ < 0 || ::ioctl(fd_, FIONBIO, &on) != 0) return;
    // Edge-triggered: bytes that arrived before this are reported at once.
    if (!worker_.watch(fd_, *this)) return;
    keep_ = self();  // the worker's watch does not own the session: this does, until finish()
    worker_.attach(*this);
    ctx_.registry.add(self());
    auto& m = worker_.metrics();
    m.connections_open.add(1);
    m.connections_opened.add(1);
    if (deflate_bits_ != 0) m.compressed_open.add(1);
    ctx_.log.info("connection.open", {{"connectionId", id().view()},
                                      {"sourceIp", info().source_ip()},
                                      {"userId", info().user_id()},
                                      {"subprotocol", info().subprotocol()},
                                      {"worker", worker_.index()},
                                      {"tls", is_tls},
                                      {"deflate", deflate_bits_ != 0}});
    ctx_.handler->on_open(self());
    if (ctx_.closing.load(std::memory_order_relaxed)) {
      // Upgraded just as the drain began (after the worker's snapshot): close like the others.
      start_close(cc::going_away, drain_close_reason, true);
    }
    if (!initial.empty() && !consume({initial.data(), initial.size()})) return;
    // TLS: records OpenSSL read with the handshake's are in the SSL object, not the socket,
    // and no event reports them. Plain: the watch reports what comes.
    if constexpr (is_tls) read_socket();
  }

  // ---- connection ----

  send_result send(message_ptr payload, bool binary) override {
    if (worker_.in_this_thread()) return enqueue_data(std::move(payload), binary);
    const bool saturated = saturated_.load(std::memory_order_relaxed);
    worker_.post([s = self(), payload = std::move(payload), binary]() mutable {
      s->enqueue_data(std::move(payload), binary);
    });
    if (!saturated) return send_result::queued;
    return ctx_.cfg.websocket.send_queue.policy == overflow_policy::drop ? send_result::dropped
                                                                         : send_result::closing;
  }

  void close(std::uint16_t code, std::string reason) override {
    worker_.post(
        [s = self(), code, reason = std::move(reason)] { s->start_close(code, reason, true); });
  }

  void begin_request() override {
    ++inflight_;
    if (inflight_ >= ctx_.cfg.routing.max_inflight_per_connection) paused_ = true;
  }

  void end_request() override {
    --inflight_;
    if (paused_ && inflight_ < ctx_.cfg.routing.max_inflight_per_connection) {
      // Not inline: this may run inside a message handler of this very session.
      asio::post(worker_.context(), [s = self()] { s->resume_reading(); });
    }
  }

  // ---- session_base ----

  void tick(steady_clock::time_point now) override {
    if (state_ == state::closed) return;
    const auto& c = ctx_.cfg.websocket;
    if (!write_active_ && queue_.empty()) release_write_memory();
    if (write_active_ && now - write_started_ >= c.send_queue.write_timeout) {
      worker_.metrics().write_timeouts.add();
      return abort(cc::abnormal, "write timeout");
    }
    if (state_ == state::closing) {
      if (now - close_started_ >= c.close_timeout) abort(cc::abnormal, "close handshake timeout");
      return;
    }
    if (info().expires_at != 0 && now_ms() >= info().expires_at) {
      worker_.metrics().token_expiry_closes.add();
      return start_close(token_expired_code, "token expired", true);
    }
    if (c.max_duration.count() > 0 && now - opened_ >= c.max_duration) {
      return start_close(cc::going_away, "maximum connection duration reached", true);
    }
    if (c.idle_timeout.count() > 0 && now - last_activity_ >= c.idle_timeout) {
      return start_close(cc::going_away, "idle timeout", true);
    }
    if (paused_) {
      // Not reading (waiting for our integrations): the peer's liveness cannot be judged.
      last_received_ = now;
      ping_outstanding_ = false;
    } else if (c.ping_interval.count() > 0) {
      if (ping_outstanding_) {
        if (now - ping_sent_ >= c.pong_timeout) {
          worker_.metrics().pong_timeouts.add();
          return abort(cc::abnormal, "pong timeout");
        }
      } else if (now - last_received_ >= c.ping_interval) {
        ping_outstanding_ = true;
        ping_sent_ = now;
        enqueue_control(ws::opcode::ping, std::string());
      }
    }
  }

  void flush() override {
    flush_pending_ = false;
    do_write();
  }

  void shutdown(std::uint16_t code, std::string_view reason) override {
    start_close(code, reason, true);
  }

  void on_io(std::uint32_t events) override {
    if (state_ == state::closed) return;
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) {
      if (want_write_) {
        want_write_ = false;
        write_socket();
        if (state_ == state::closed) return;
      }
      if constexpr (is_tls) {
        if (tls_.read_wants_write) {
          tls_.read_wants_write = false;
          read_socket();
          if (state_ == state::closed) return;
        }
      }
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) != 0) {
      if constexpr (is_tls) {
        if (tls_.write_wants_read) {
          tls_.write_wants_read = false;
          write_socket();
          if (state_ == state::closed) return;
        }
      }
      read_socket();
    }
  }

  void drop() override { keep_.reset(); }

  // ---- ws::frame_handler ----

  bool on_message(ws::opcode op, std::string_view payload, bool compressed) override {
    if (state_ != state::open) return true;  // closing: discard data, keep looking for the close
    if (compressed && !inflate(op, payload)) return false;
    worker_.metrics().messages_in.add();
    last_activity_ = worker_.now();
    // lastActiveAt (GetConnection) to the millisecond: one clock read per client message. Sends
    // use the worker's clock (refreshed every tick), which is free on the fan-out path.
    touch(herald::now_ms());
    if (op == ws::opcode::binary && ctx_.cfg.websocket.binary == binary_policy::reject) {
      start_close(cc::unsupported_data, "binary frames are not supported", true);
      return true;
    }
    if (!rate_.take(ctx_.cfg.websocket.rate_limit)) return throttled();
    if (op == ws::opcode::binary) {
      ctx_.handler->on_message(*this, ws::base64_encode(payload), true);
    } else {
      ctx_.handler->on_message(*this, payload, false);
    }
    // At the in-flight limit: stop decoding here; the rest waits in the stash.
    return state_ != state::closed && !paused_;
  }

  bool on_ping(std::string_view payload) override {
    if (!close_queued_) enqueue_control(ws::opcode::pong, std::string(payload));
    return true;
  }

  bool on_pong(std::string_view) override { return true; }

  bool on_close(std::uint16_t code, std::string_view reason) override {
    close_received_ = true;
    if (state_ == state::open) {
      // The client closes: echo its code (RFC 6455 5.5.1), then drop the TCP connection.
      state_ = state::closing;
      close_code_ = code;
      cold().close_reason = std::string(reason);
      close_started_ = worker_.now();
      wait_for_peer_ = false;
      discard_unsent_data();
      enqueue_close(code == cc::no_status ? std::string() : ws::close_payload(code, ""));
    } else if (state_ == state::closing && close_sent_) {
      finish();
    }
    return false;
  }

 private:
  enum class state : std::uint8_t { open, closing, closed };

  // What most connections never need, out of line: every idle connection holds a session.
  struct cold_state {
    std::string stash;  // undecoded input held while paused
    std::string close_reason;
    std::size_t violations = 0;  // messages over the rate limit
  };
  cold_state& cold() {
    if (!cold_) cold_ = std::make_unique<cold_state>();
    return *cold_;
  }
  std::string_view close_reason() const { return cold_ ? cold_->close_reason : std::string_view(); }

  struct tls_state {
    SSL* ssl = nullptr;
    std::string out;          // a batch copied into one buffer (full TLS records), while writing
    std::size_t written = 0;  // ... and how much of it OpenSSL took
    bool read_wants_write = false;  // SSL_read waits for room in the socket
    bool write_wants_read = false;  // SSL_write waits for bytes from the peer
  };
  struct no_tls {};

  std::shared_ptr<websocket_session> self() {
    return std::static_pointer_cast<websocket_session>(shared_from_this());
  }

  // ---- inbound rate limit (token bucket) ----

  // The message is not routed: the client hears why, and a client that keeps going is closed.
  bool throttled() {
    worker_.metrics().messages_throttled.add();
    const auto max = ctx_.cfg.websocket.rate_limit.max_violations;
    if (++cold().violations == 1) {
      ctx_.log.warn("connection.throttled",
                    {{"connectionId", id().view()},
                     {"rate", ctx_.cfg.websocket.rate_limit.messages_per_second}});
    }
    enqueue_data(
        make_message(protocol::gateway_error("Too many requests", id().view(), make_request_id())),
        false);
    if (max > 0 && cold().violations >= max)
      start_close(cc::policy_violation, "rate limit exceeded", true);
    return state_ != state::closed;
  }

  // A compressed client message, inflated into the worker's buffer (`payload` then points
  // there) within websocket.max_message_bytes. False when the connection is closing for it.
  bool inflate(ws::opcode op, std::string_view& payload) {
    auto& out = worker_.inflate_buffer();
    const auto limit = ctx_.cfg.websocket.max_message_bytes;
    const auto st = worker_.inflater().inflate(payload, limit, out);
    std::uint16_t code = 0;
    std::string_view reason;
    if (st == ws::inflater::status::too_big) {
      code = cc::message_too_big;
      reason = "message too large";
    } else if (st == ws::inflater::status::corrupt) {
      code = cc::invalid_payload;
      reason = "invalid compressed data";
    } else if (op == ws::opcode::text && !ws::is_valid_utf8(out)) {
      code = cc::invalid_payload;
      reason = "invalid UTF-8 in text message";
    }
    if (code != 0) {
      worker_.metrics().protocol_errors.add();
      ctx_.log.debug("connection.protocol_error",
                     {{"connectionId", id().view()}, {"code", code}, {"reason", reason}});
      out.clear();
      if (out.capacity() > limit) std::string().swap(out);
      start_close(code, reason, false);
      return false;
    }
    worker_.metrics().messages_inflated.add();
    payload = out;
    return true;
  }

  // ---- reading ----

  void resume_reading() {
    if (state_ == state::closed || !paused_ ||
        inflight_ >= ctx_.cfg.routing.max_inflight_per_connection) {
      return;
    }
    paused_ = false;
    if (cold_ && !cold_->stash.empty()) {
      std::string pending;
      pending.swap(cold_->stash);
      if (!consume({pending.data(), pending.size()})) return;
    }
    read_socket();
  }

  // Reads what the socket holds into the worker's shared buffer and decodes it (the watch is
  // edge-triggered: a socket read until it would block brings a new event with the next bytes).
  // An idle connection holds no read memory and no pending operation.
  void read_socket() {
    if (paused_ || state_ == state::closed || close_received_) return;
    // Closing without waiting for the peer (after a protocol error): read nothing more.
    if (state_ == state::closing && !wait_for_peer_) return;
    if constexpr (is_tls) {
      if (!read_tls()) return;
    } else {
      if (!read_plain()) return;
    }
    // More may be waiting: yield to the other connections of this worker, then go on.
    if (read_pending_) return;
    read_pending_ = true;
    asio::post(worker_.context(), [s = self()] {
      s->read_pending_ = false;
      s->read_socket();
    });
  }

  // A few reads at most. True when the socket may hold more.
  bool read_plain() {
    const auto buf = worker_.read_buffer();
    for (int round = 0; round < 4;) {
      const ssize_t got = ::recv(fd_, buf.data(), buf.size(), 0);
      if (got > 0) {
        const auto n = static_cast<std::size_t>(got);
        if (!consume(buf.first(n))) return false;
        if (n < buf.size()) return false;  // a short read: the socket is empty
        ++round;
        continue;
      }
      if (got == 0) {
        fail(asio::error::eof, "read");
        return false;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
      fail(error_code(errno, boost::system::system_category()), "read");
      return false;
    }
    return true;
  }

  // A few records at most (SSL_read gives one record's bytes at a time). True when the socket
  // or the SSL object may hold more.
  bool read_tls() {
    const auto buf = worker_.read_buffer();
    for (int round = 0; round < max_tls_reads; ++round) {
      const auto r = tls_socket::attempt(tls_.ssl, tls_socket::op::read, buf.data(), buf.size());
      if (r.needs == tls_socket::wait::read) return false;  // OpenSSL read the socket empty
      if (r.needs == tls_socket::wait::write) {
        // The peer's window is full and OpenSSL has something to send first.
        tls_.read_wants_write = true;
        if (!watch_writes()) fail(error_code(errno, boost::system::system_category()), "read");
        return false;
      }
      if (r.ec) {
        fail(r.ec, "read");
        return false;
      }
      if (!consume(buf.first(r.bytes))) return false;
    }
    return true;
  }

  bool watch_writes() {
    if (writes_watched_) return true;
    writes_watched_ = true;
    return worker_.watch_writes(fd_, *this);
  }

  // Feeds bytes to the decoder. Returns false when reading should stop.
  bool consume(std::span<char> data) {
    worker_.metrics().bytes_in.add(data.size());
    last_received_ = worker_.now();
    ping_outstanding_ = false;  // any bytes prove the peer is alive
    const auto status = decoder_.feed(data, *this);
    if (status == ws::decode_status::error) {
      worker_.metrics().protocol_errors.add();
      const auto& err = decoder_.error();
      ctx_.log.debug("connection.protocol_error",
                     {{"connectionId", id().view()}, {"code", err.code}, {"reason", err.reason}});
      start_close(err.code, err.reason, false);
      return false;
    }
    if (state_ == state::closed || close_received_) return false;
    if (paused_) {
      // At the in-flight bound: keep what was not decoded (if anything) and read no more until
      // a request finishes.
      if (status == ws::decode_status::stopped) {
        cold().stash.assign(data.data() + decoder_.consumed(), data.size() - decoder_.consumed());
      }
      return false;
    }
    return !(state_ == state::closing && !wait_for_peer_);
  }

  // ---- writing ----

  bool over_limits(std::size_t extra_bytes) const {
    const auto& q = ctx_.cfg.websocket.send_queue;
    return queue_.size() + writing_.size() >= q.max_messages ||
           queue_bytes_ + extra_bytes > q.max_bytes;
  }

  send_result enqueue_data(message_ptr payload, bool binary) {
    if (state_ != state::open) return send_result::closing;
    const auto op = binary ? ws::opcode::binary : ws::opcode::text;
    std::string_view bytes = payload->bytes();
    bool compressed = false;
    if (deflate_bits_ != 0 && bytes.size() >= ctx_.cfg.websocket.compression.min_bytes) {
      // Compressed once for every recipient with this window, by the first one to need it.
      bool made = false;
      const auto z = payload->deflated(deflate_bits_, ctx_.cfg.websocket.compression.level, made);
      auto& m = worker_.metrics();
      if (made) {
        m.deflate_compressions.add();
        m.deflate_bytes_in.add(bytes.size());
        m.deflate_bytes_out.add(z.size());
      }
      // What does not get smaller (already compressed data, random ids) goes as it is.
      if (!z.empty() && z.size() < bytes.size()) {
        bytes = z;
        compressed = true;
      }
    }
    auto frame = make_frame(op, std::move(payload), frame_kind::data, bytes, compressed);
    const std::size_t size = frame.size();
    if (over_limits(size)) return overflow();
    if (compressed) worker_.metrics().messages_out_compressed.add();
    queue_.push_back(std::move(frame));
    queue_bytes_ += size;
    last_activity_ = worker_.now();
    touch(worker_.now_ms());
    update_saturation();
    request_flush();
    return send_result::queued;
  }

  send_result overflow() {
    auto& m = worker_.metrics();
    if (ctx_.cfg.websocket.send_queue.policy == overflow_policy::drop) {
      m.send_queue_dropped.add();
      if (!drop_logged_) {
        drop_logged_ = true;  // once per connection; the counter has the rest
        ctx_.log.warn("connection.send_queue_full",
                      {{"connectionId", id().view()},
                       {"policy", "drop"},
                       {"queuedMessages", queue_.size() + writing_.size()},
                       {"queuedBytes", queue_bytes_}});
      }
      return send_result::dropped;
    }
    m.send_queue_overflow_closes.add();
    ctx_.log.warn("connection.send_queue_full",
                  {{"connectionId", id().view()},
                   {"policy", "close"},
                   {"queuedMessages", queue_.size() + writing_.size()},
                   {"queuedBytes", queue_bytes_}});
    // The client is not reading: what is queued would only arrive late. Drop it and close.
    discard_unsent_data();
    start_close(cc::policy_violation, "send queue overflow", false);
    return send_result::closing;
  }

  // Pings and pongs go ahead of queued data; they are never dropped and not counted
  // against the queue limits (a pong answers at most the latest ping).
  void enqueue_control(ws::opcode op, std::string payload) {
    if (close_queued_ || state_ == state::closed) return;
    const frame_kind kind = op == ws::opcode::ping ? frame_kind::ping : frame_kind::pong;
    auto it = queue_.begin();
    while (it != queue_.end() && it->kind != frame_kind::data) {
      if (it->kind == kind && kind == frame_kind::pong) {
        queue_bytes_ -= it->size();
        *it = make_frame(op, make_message(std::move(payload)), kind);
        queue_bytes_ += it->size();
        return;
      }
      ++it;
    }
    auto frame = make_frame(op, make_message(std::move(payload)), kind);
    queue_bytes_ += frame.size();
    queue_.insert(it, std::move(frame));
    request_flush();
  }

  void enqueue_close(std::string payload) {
    if (close_queued_) return;
    close_queued_ = true;
    auto frame = make_frame(ws::opcode::close, make_message(std::move(payload)), frame_kind::close);
    queue_bytes_ += frame.size();
    queue_.push_back(std::move(frame));
    request_flush();
  }

  void discard_unsent_data() {
    std::erase_if(queue_, [this](const outbound& o) {
      if (o.kind != frame_kind::data) return false;
      queue_bytes_ -= o.size();
      return true;
    });
  }

  void release_write_memory() {
    if constexpr (is_tls) std::string().swap(tls_.out);
    if (queue_.capacity() == 0 && writing_.capacity() == 0) return;
    std::vector<outbound>().swap(writing_);
    std::vector<outbound>().swap(queue_);
  }

  void update_saturation() { saturated_.store(over_limits(0), std::memory_order_relaxed); }

  void request_flush() {
    if (write_active_ || flush_pending_ || state_ == state::closed) return;
    flush_pending_ = true;
    worker_.schedule_flush(self());
  }

  void do_write() {
    if (write_active_ || queue_.empty() || state_ == state::closed) return;
    writing_.swap(queue_);
    batch_bytes_ = 0;
    batch_has_close_ = false;
    for (const auto& f : writing_) {
      batch_bytes_ += f.size();
      batch_has_close_ = batch_has_close_ || f.kind == frame_kind::close;
    }
    write_active_ = true;
    write_started_ = worker_.now();
    if constexpr (is_tls) {
      // One buffer for the batch, so that OpenSSL makes full records of it (one per frame
      // otherwise).
      tls_.out.clear();
      tls_.out.reserve(batch_bytes_);
      for (const auto& f : writing_) {
        tls_.out.append(reinterpret_cast<const char*>(f.header.data()), f.header_len);
        tls_.out.append(f.payload);
      }
      tls_.written = 0;
    } else {
      write_index_ = 0;
      write_skip_ = 0;
      batch_written_ = 0;
    }
    write_socket();
  }

  void write_socket() {
    if constexpr (is_tls) {
      write_tls();
    } else {
      write_plain();
    }
  }

  // TLS: SSL_write of the batch's buffer until it is all taken (a partial write returns what
  // went out, record by record) or the socket is full; then the watch reports room (on_io).
  void write_tls() {
    while (tls_.written < tls_.out.size()) {
      const auto r =
          tls_socket::attempt(tls_.ssl, tls_socket::op::write, tls_.out.data() + tls_.written,
                              tls_.out.size() - tls_.written);
      if (r.needs == tls_socket::wait::write) {
        want_write_ = true;
        if (!watch_writes()) {
          want_write_ = false;
          return on_write(error_code(errno, boost::system::system_category()), 0);
        }
        return;
      }
      if (r.needs == tls_socket::wait::read) {
        tls_.write_wants_read = true;  // the next bytes from the peer (on_io) go on with it
        return;
      }
      if (r.ec) return on_write(r.ec, 0);
      worker_.metrics().socket_writes.add();
      tls_.written += r.bytes;
    }
    on_write({}, tls_.out.size());
  }

  // Plain sockets: gathered sendmsg calls straight from the batch (every header and shared
  // payload one iovec, up to IOV_MAX per call; Asio's write path takes at most 64 buffers and
  // allocates an operation per write). Runs until the batch is out or the socket is full; then
  // waits for writability and goes on.
  void write_plain() {
    if constexpr (!is_tls) {
      std::array<iovec, max_iov> iov;  // NOLINT(cppcoreguidelines-pro-type-member-init)
      const int fd = fd_;
      while (write_index_ < writing_.size()) {
        std::size_t n = 0;
        std::size_t skip = write_skip_;
        for (std::size_t i = write_index_; i < writing_.size() && n + 2 <= iov.size(); ++i) {
          const auto& f = writing_[i];
          if (skip < f.header_len) {
            iov[n++] = {const_cast<std::uint8_t*>(f.header.data()) + skip, f.header_len - skip};
            skip = 0;
          } else {
            skip -= f.header_len;
          }
          const std::size_t len = f.payload.size();
          if (skip < len) iov[n++] = {const_cast<char*>(f.payload.data()) + skip, len - skip};
          skip = 0;
        }
        msghdr msg{};
        msg.msg_iov = iov.data();
        msg.msg_iovlen = n;
        const ssize_t sent =
            ::sendmsg(fd, &msg, MSG_NOSIGNAL);  // a closed peer is EPIPE, no signal
        worker_.metrics().socket_writes.add();
        if (sent < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK) {
            // The peer's window is full: wait for the watch to report room, then go on from
            // where we are (on_io). Writability joins the watch the first time it is needed.
            want_write_ = true;
            if (!watch_writes()) {
              want_write_ = false;
              return on_write(error_code(errno, boost::system::system_category()), 0);
            }
            return;
          }
          return on_write(error_code(errno, boost::system::system_category()), 0);
        }
        auto left = static_cast<std::size_t>(sent);
        batch_written_ += left;
        left += write_skip_;
        while (write_index_ < writing_.size() && left >= writing_[write_index_].size()) {
          left -= writing_[write_index_].size();
          ++write_index_;
        }
        write_skip_ = left;
      }
      on_write({}, batch_written_);
    }
  }

  void on_write(error_code ec, std::size_t bytes) {
    write_active_ = false;
    if (ec) return fail(ec, "write");
    auto& m = worker_.metrics();
    m.bytes_out.add(bytes);
    std::size_t data_frames = 0;
    for (const auto& f : writing_)
      data_frames += f.kind == frame_kind::data ? 1 : 0;
    m.messages_out.add(data_frames);
    queue_bytes_ -= batch_bytes_;
    writing_.clear();
    // The queues keep their capacity for the next batch of a busy connection; the tick gives
    // it back once the connection has been idle for a tick (no queue memory while idle).
    update_saturation();
    if (batch_has_close_) {
      close_sent_ = true;
      if (close_received_ || !wait_for_peer_) return finish();
    }
    if (state_ != state::closed) do_write();
  }

  // ---- closing ----

  void start_close(std::uint16_t code, std::string_view reason, bool wait_for_peer) {
    if (state_ != state::open) return;
    state_ = state::closing;
    close_code_ = code;
    cold().close_reason = std::string(reason);
    close_started_ = worker_.now();
    wait_for_peer_ = wait_for_peer;
    enqueue_close(ws::close_payload(code, reason));
  }

  // Drops the connection without a close handshake.
  void abort(std::uint16_t code, std::string_view reason) {
    if (state_ == state::open) {
      close_code_ = code;
      cold().close_reason = std::string(reason);
    }
    finish();
  }

  void fail(error_code ec, const char* what) {
    if (ec == asio::error::operation_aborted || state_ == state::closed) return;
    if (is_disconnect(ec)) return abort(cc::abnormal, "connection lost");
    ctx_.log.debug("connection.io_error",
                   {{"connectionId", id().view()}, {"op", what}, {"error", ec.message()}});
    abort(cc::abnormal, what);
  }

  void finish() {
    if (state_ == state::closed) return;
    state_ = state::closed;
    ::close(fd_);  // ends the watch
    fd_ = -1;
    want_write_ = false;
    if constexpr (is_tls) {
      // Without a close_notify, as before: the WebSocket close handshake ended the session.
      // Nothing of the connection is kept once it is closed.
      SSL_free(tls_.ssl);
      tls_.ssl = nullptr;
      std::string().swap(tls_.out);
    }
    queue_.clear();
    worker_.detach(*this);
    ctx_.registry.remove(*this);
    slot_.release();
    auto& m = worker_.metrics();
    m.connections_open.add(-1);
    if (deflate_bits_ != 0) m.compressed_open.add(-1);
    m.connections_closed.add();
    m.count_close(close_code_);
    const auto lived =
        std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - opened_);
    ctx_.log.info("connection.close", {{"connectionId", id().view()},
                                       {"code", close_code_},
                                       {"reason", close_reason()},
                                       {"duration_ms", lived.count()}});
    ctx_.handler->on_close(*this, close_code_, close_reason());
    // Not here: the worker may still hold events for this session in the batch it is
    // handling, and the caller is a member of this session.
    if (keep_) asio::post(worker_.context(), [keep = std::move(keep_)] {});
  }

  int fd_ = -1;
  std::shared_ptr<websocket_session> keep_;  // owns the session while it is watched
  admission slot_;  // our place under websocket.max_connections, released in finish()
  worker& worker_;
  server_context& ctx_;
  ws::decoder decoder_;

  std::vector<outbound> queue_;    // waiting to be written
  std::vector<outbound> writing_;  // being written
  std::size_t write_index_ = 0;    // plain: first frame of writing_ not fully written
  std::size_t write_skip_ = 0;     // ... and how many of its bytes are
  std::size_t batch_written_ = 0;  // bytes of this batch written so far
  [[no_unique_address]] std::conditional_t<is_tls, tls_state, no_tls> tls_;
  std::size_t queue_bytes_ = 0;  // queue_ and writing_ together
  std::size_t batch_bytes_ = 0;
  message_rate rate_;

  steady_clock::time_point opened_, last_activity_, last_received_, ping_sent_, write_started_,
      close_started_;
  std::unique_ptr<cold_state> cold_;  // allocated on first use
  // (The small members last, packed: every idle connection holds a session.)
  std::uint32_t inflight_ = 0;          // messages being handled by integrations
  std::atomic<bool> saturated_{false};  // read by other threads deciding 429s
  std::uint16_t close_code_ = cc::abnormal;
  state state_ = state::open;
  bool write_active_ = false;
  bool flush_pending_ = false;
  bool batch_has_close_ = false;
  bool ping_outstanding_ = false;
  bool close_queued_ = false;
  bool close_sent_ = false;
  bool close_received_ = false;
  bool wait_for_peer_ = true;
  bool drop_logged_ = false;
  bool read_pending_ = false;  // a read is posted (more may be waiting: yielded)
  bool want_write_ = false;    // a write waits for room in the socket (on_io)
  bool writes_watched_ = false;
  bool paused_ = false;            // at routing.max_inflight_per_connection: not reading
  std::uint8_t deflate_bits_ = 0;  // permessage-deflate window of our messages; 0: off
};

}  // namespace

bool is_disconnect(const error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::connection_aborted ||
         ec == asio::ssl::error::stream_truncated;
}

bool message_rate::take(const rate_limit_config& rl) {
  if (rl.messages_per_second <= 0) return true;
  const auto now = steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - refill_at_).count();
  tokens_ = std::min(rl.burst, tokens_ + elapsed * rl.messages_per_second);
  refill_at_ = now;
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

template <class Stream>
void start_websocket_session(Stream stream, std::string initial, connection_info info,
                             admission slot, int deflate_bits, worker& w, server_context& ctx) {
  auto session = std::make_shared<websocket_session<Stream>>(std::move(stream), std::move(info),
                                                             std::move(slot), deflate_bits, w, ctx);
  session->start(std::move(initial));
}

template void start_websocket_session<plain_stream>(plain_stream, std::string, connection_info,
                                                    admission, int, worker&, server_context&);
template void start_websocket_session<tls_stream>(tls_stream, std::string, connection_info,
                                                  admission, int, worker&, server_context&);

}  // namespace herald::net
