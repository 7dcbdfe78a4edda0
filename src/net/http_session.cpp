#include "net/http_session.hpp"

#include <cerrno>
#include <memory>
#include <optional>
#include <string>

#include <sys/socket.h>

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "herald/auth/authenticator.hpp"
#include "herald/auth/upgrade_guard.hpp"
#include "herald/common/cidr.hpp"
#include "herald/common/url.hpp"
#include "herald/routing/router.hpp"
#include "herald/ws/deflate.hpp"
#include "herald/ws/handshake.hpp"
#include "net/http_handler.hpp"
#include "net/sse_session.hpp"
#include "net/tls_context.hpp"
#include "net/websocket_session.hpp"
#include "net/worker.hpp"

namespace herald::net {
namespace {

namespace beast = boost::beast;

std::string remote_ip_of(const tcp::socket::lowest_layer_type& socket) {
  error_code ec;
  const auto ep = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  auto addr = ep.address();
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
    addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
  }
  return addr.to_string();
}

bool is_websocket_upgrade(const http_request& req) {
  return ws::header_has_token(req[http::field::connection], "upgrade") &&
         ws::header_has_token(req[http::field::upgrade], "websocket");
}

// HTTP/1.1 on one connection (plain or TLS), up to and including a WebSocket upgrade.
template <class Stream>
class http_session : public std::enable_shared_from_this<http_session<Stream>> {
 public:
  static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

  http_session(Stream&& stream, beast::flat_buffer&& buffer, listener_role role, worker& w,
               server_context& ctx, steady_clock::time_point accepted_at)
      : stream_(std::move(stream)),
        buffer_(std::move(buffer)),
        role_(role),
        worker_(w),
        ctx_(ctx),
        timer_(w.context()),
        accepted_at_(accepted_at),
        remote_ip_(remote_ip_of(stream_.lowest_layer())) {}

  void run() { do_read(); }

 private:
  void arm_timer(steady_clock::time_point deadline) {
    timer_.expires_at(deadline);
    timer_.async_wait([self = this->shared_from_this()](error_code ec) {
      if (ec || self->done_) return;
      self->ctx_.log.debug("http.timeout", {{"sourceIp", self->remote_ip_}});
      self->do_close();
    });
  }

  void do_read() {
    const auto& h = ctx_.cfg.http;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(h.max_header_bytes));
    parser_->body_limit(h.max_body_bytes);
    const auto now = steady_clock::now();
    auto deadline = now + (requests_ == 0 ? h.request_timeout : h.keepalive_timeout);
    if (requests_ == 0 && role_ == listener_role::client) {
      deadline = std::min(deadline, accepted_at_ + ctx_.cfg.websocket.handshake_timeout);
    }
    arm_timer(deadline);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    if (done_) return;
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
        ec == asio::ssl::error::stream_truncated) {
      return do_close();
    }
    if (ec == http::error::header_limit) {
      return reject(http::status::request_header_fields_too_large, "headers_too_large",
                    "request headers exceed " + format_size(ctx_.cfg.http.max_header_bytes));
    }
    if (ec == http::error::body_limit) {
      return reject(http::status::payload_too_large, "body_too_large",
                    "request body exceeds " + format_size(ctx_.cfg.http.max_body_bytes));
    }
    if (ec) return reject(http::status::bad_request, "bad_request", "malformed HTTP request");

    ++requests_;
    worker_.metrics().http_requests.add();
    http_request req = parser_->release();
    if (req.target().size() > ctx_.cfg.http.max_url_bytes) {
      return reject(
          http::status::uri_too_long, "uri_too_long",
          "request target exceeds " + std::to_string(ctx_.cfg.http.max_url_bytes) + " bytes");
    }
    const std::string_view path = request_path(req.target());
    const bool on_ws_path = role_ == listener_role::client && path == ctx_.cfg.websocket.path;
    if (role_ == listener_role::client && ctx_.cfg.sse.enabled && path == ctx_.cfg.sse.path &&
        !is_websocket_upgrade(req)) {
      return sse_request(std::move(req));
    }
    if (is_websocket_upgrade(req)) {
      if (!on_ws_path)
        return reject(http::status::not_found, "not_found", "no WebSocket endpoint here");
      return upgrade(std::move(req));
    }
    const bool read_only = req.method() == http::verb::get || req.method() == http::verb::head;
    if (on_ws_path && !(ctx_.serves_files && read_only)) {
      auto res = json_error(http::status::upgrade_required, "upgrade_required",
                            "this path accepts WebSocket connections only");
      res.set(http::field::upgrade, "websocket");
      res.set(http::field::connection, "Upgrade");
      res.set(http::field::sec_websocket_version, "13");
      return write(std::move(res), req.version(), req.keep_alive(),
                   req.method() == http::verb::head);
    }
    http_handler* handler = role_ == listener_role::client ? ctx_.client_http : ctx_.admin_http;
    const unsigned version = req.version();
    const bool keep_alive = req.keep_alive();
    const bool head = req.method() == http::verb::head;
    handler->handle(
        std::move(req), {remote_ip_, role_, is_tls, worker_.index()},
        [self = this->shared_from_this(), version, keep_alive, head](http_response&& res) {
          // The handler may answer from another thread.
          asio::post(self->worker_.context(),
                     [self, version, keep_alive, head, res = std::move(res)]() mutable {
                       self->write(std::move(res), version, keep_alive, head);
                     });
        });
  }

  // Answers an unusable request and closes the connection.
  void reject(http::status status, std::string_view code, const std::string& message) {
    write(json_error(status, code, message), 11, false, false);
  }

  void write(http_response&& res, unsigned version, bool keep_alive, bool head) {
    if (done_) return;
    res.version(version);
    res.keep_alive(keep_alive && !ctx_.draining.load(std::memory_order_relaxed));
    res.set(http::field::server, "herald");
    res.prepare_payload();
    if (head) res.body().clear();  // Content-Length stays that of the GET response
    auto sp = std::make_shared<http_response>(std::move(res));
    arm_timer(steady_clock::now() + ctx_.cfg.http.request_timeout);
    http::async_write(stream_, *sp,
                      [self = this->shared_from_this(), sp](error_code ec, std::size_t) {
                        if (ec || !sp->keep_alive()) return self->do_close();
                        self->do_read();
                      });
  }

  void upgrade(http_request&& req) {
    if (req.method() != http::verb::get || req.version() != 11) {
      return reject(http::status::bad_request, "bad_request",
                    "a WebSocket upgrade must be GET over HTTP/1.1");
    }
    if (req[http::field::host].empty()) {
      return reject(http::status::bad_request, "bad_request", "missing Host header");
    }
    // RFC 6455 §11.3.1, §11.3.5: each may appear once; a request with two is not a handshake.
    if (req.count(http::field::sec_websocket_key) > 1 ||
        req.count(http::field::sec_websocket_version) > 1) {
      return reject(http::status::bad_request, "bad_request",
                    "Sec-WebSocket-Key and Sec-WebSocket-Version must appear once");
    }
    if (req[http::field::sec_websocket_version] != "13") {
      auto res = json_error(http::status::upgrade_required, "unsupported_version",
                            "only WebSocket version 13 is supported");
      res.set(http::field::sec_websocket_version, "13");
      return write(std::move(res), 11, false, false);
    }
    const std::string_view key = req[http::field::sec_websocket_key];
    if (!ws::is_valid_client_key(key)) {
      return reject(http::status::bad_request, "bad_request",
                    "missing or invalid Sec-WebSocket-Key");
    }
    admit_connection(std::move(req));
  }

  // The SSE fallback's path: GET opens a stream (a connection like a WebSocket one), POST sends
  // a message on one (its session token in the Herald-Session header), OPTIONS is a CORS
  // preflight from a page on another (allowed) origin.
  void sse_request(http_request&& req) {
    const auto method = req.method();
    const std::string_view origin = req[http::field::origin];
    const bool cors = !origin.empty() && origin_allowed(ctx_.cfg.websocket.allowed_origins, origin);
    const auto with_cors = [&](http_response res) {
      if (cors) {
        res.set(http::field::access_control_allow_origin, origin);
        res.set(http::field::vary, "Origin");
      }
      return res;
    };
    if (method == http::verb::options) {
      http_response res{http::status::no_content, req.version()};
      if (cors) {
        res.set(http::field::access_control_allow_methods, "GET, POST, DELETE");
        res.set(http::field::access_control_allow_headers,
                "Herald-Session, Content-Type, Authorization");
        res.set(http::field::access_control_max_age, "600");
      }
      return write(with_cors(std::move(res)), req.version(), req.keep_alive(), false);
    }
    if (method == http::verb::post || method == http::verb::delete_) {
      const unsigned version = req.version();
      const bool keep_alive = req.keep_alive();
      const std::string token(req["Herald-Session"]);
      const bool end = method == http::verb::delete_;
      return sse_post(
          ctx_, token, end ? std::string() : std::move(req.body()), end,
          [self = this->shared_from_this(), version, keep_alive,
           cors_origin = cors ? std::string(origin) : std::string()](http_response&& res) {
            asio::post(self->worker_.context(),
                       [self, version, keep_alive, cors_origin, res = std::move(res)]() mutable {
                         if (!cors_origin.empty()) {
                           res.set(http::field::access_control_allow_origin, cors_origin);
                           res.set(http::field::vary, "Origin");
                         }
                         self->write(std::move(res), version, keep_alive, false);
                       });
          });
    }
    if (method != http::verb::get) {
      auto res = json_error(http::status::method_not_allowed, "method_not_allowed",
                            "GET opens a Server-Sent Events stream, POST sends on one, DELETE ends "
                            "one");
      res.set(http::field::allow, "GET, POST, DELETE, OPTIONS");
      return write(with_cors(std::move(res)), req.version(), false, false);
    }
    sse_ = true;
    if (cors) sse_cors_origin_ = std::string(origin);
    admit_connection(std::move(req));
  }

  // What a WebSocket upgrade and an SSE stream share: the drain, origin, per-address and
  // connection limits, the connection's identity, auth and $connect.
  void admit_connection(http_request&& req) {
    const auto& cfg = ctx_.cfg;
    if (ctx_.closing.load(std::memory_order_relaxed)) {
      worker_.metrics().reject(reject_reason::draining);
      return reject(http::status::service_unavailable, "unavailable", "server is shutting down");
    }
    const std::string source_ip =
        client_address(remote_ip_, req["X-Forwarded-For"], ctx_.trusted_proxies);
    const std::string_view origin = req[http::field::origin];
    if (!origin_allowed(cfg.websocket.allowed_origins, origin)) {
      worker_.metrics().reject(reject_reason::origin);
      ctx_.log.info(
          "connection.rejected",
          {{"reason", "origin"}, {"sourceIp", source_ip}, {"origin", origin.substr(0, 256)}});
      return reject(http::status::forbidden, "forbidden_origin", "origin not allowed");
    }
    std::shared_ptr<void> ip_hold;
    if (ctx_.ip_limits) {
      const auto v = ctx_.ip_limits->admit(source_ip, steady_clock::now());
      if (v != ip_limiter::verdict::ok) {
        const bool rate = v == ip_limiter::verdict::rate;
        worker_.metrics().reject(rate ? reject_reason::ip_rate : reject_reason::ip_connections);
        ctx_.log.info("connection.rejected",
                      {{"reason", rate ? "ip_rate" : "ip_connections"}, {"sourceIp", source_ip}});
        auto res = json_error(http::status::too_many_requests, "too_many_requests",
                              rate ? "too many new connections from this address"
                                   : "too many open connections from this address");
        res.set(http::field::retry_after, "1");
        return write(std::move(res), 11, false, false);
      }
      ip_hold = std::shared_ptr<void>(static_cast<void*>(ctx_.ip_limits), [source_ip](void* p) {
        static_cast<ip_limiter*>(p)->release(source_ip);
      });
    }
    // The place is held from now on (during $connect too), so concurrent handshakes cannot
    // overshoot the limit; it is released when the connection finishes or the upgrade fails.
    slot_ = ctx_.admit(ctx_.connection_limit);
    if (!slot_) {
      worker_.metrics().reject(reject_reason::connection_limit);
      ctx_.log.warn("connection.rejected", {{"reason", "max_connections"},
                                            {"limit", ctx_.connection_limit},
                                            {"sourceIp", source_ip}});
      auto res = json_error(http::status::service_unavailable, "unavailable",
                            "connection limit reached; retry later or on another node");
      res.set(http::field::retry_after, "1");
      return write(std::move(res), 11, false, false);
    }
    if (ip_hold) slot_->attach(std::move(ip_hold));

    connection_info info;
    info.id = connection_id::generate();
    info.connected_at = now_ms();
    info.set_source_ip(source_ip);
    info.set_user_agent(req[http::field::user_agent]);
    info.set_host(host_without_port(req[http::field::host]));
    info.worker = worker_.index();
    std::vector<std::string> offered;
    std::string accept;
    if (sse_) {
      // The stream resumes from Last-Event-ID: the positions of its history channels.
      sse_resume_ = std::string(req["Last-Event-ID"]);
      sse_target_ = std::string(req.target());
    } else {
      offered = ws::split_header_list(req[http::field::sec_websocket_protocol]);
      accept = ws::accept_key(req[http::field::sec_websocket_key]);
    }
    if (const auto& z = ctx_.cfg.websocket.compression; z.enabled && !sse_) {
      // The header may be repeated: every value is an offer, in order.
      std::string extensions;
      const auto [first, last] = req.equal_range(http::field::sec_websocket_extensions);
      for (auto it = first; it != last; ++it) {
        if (!extensions.empty()) extensions += ", ";
        extensions.append(it->value().data(), it->value().size());
      }
      if (!extensions.empty()) {
        deflate_ = ws::negotiate_deflate(extensions, {z.server_max_window_bits});
        if (!deflate_) worker_.metrics().deflate_declined.add();
      }
    }

    const bool authenticate = ctx_.auth && ctx_.auth->enabled();
    if (!ctx_.connect_hook && !authenticate)
      return accept_upgrade(std::move(info), offered, std::move(accept), {});
    auto creq = std::make_shared<connect_request>();
    creq->target = std::string(req.target());
    for (const auto& field : req)
      creq->headers.emplace_back(field.name_string(), field.value());
    {
      unsigned char random[12];
      random_bytes(random, sizeof random);
      error_code ec;
      const auto local = stream_.lowest_layer().local_endpoint(ec);
      const std::string trace = make_trace_id(info.connected_at, random);
      add_forwarding_headers(creq->headers,
                             {info.source_ip(), trusted_address(remote_ip_, ctx_.trusted_proxies),
                              is_tls, ec ? 0u : local.port(), trace});
    }
    // Every integration has its own bounded timeout; this is only a safety net.
    arm_timer(steady_clock::now() + std::chrono::minutes(11));
    if (!authenticate) return run_connect_hook(std::move(info), creq, offered, std::move(accept));
    // The token subprotocol (if any) leaves `offered` here, before $connect sees the list.
    auto offer = std::make_shared<std::vector<std::string>>(std::move(offered));
    ctx_.auth->authenticate(info, *creq, *offer,
                            [self = this->shared_from_this(), info, creq, offer,
                             accept = std::move(accept)](auth_outcome a) mutable {
                              if (self->done_) return;
                              if (!a.accept) return self->refuse_auth(info, a);
                              info.set_user_id(a.user_id);
                              info.authorizer = std::move(a.authorizer);
                              info.expires_at = a.expires_at;
                              self->run_connect_hook(std::move(info), creq, std::move(*offer),
                                                     std::move(accept));
                            });
  }

  void run_connect_hook(connection_info info, const std::shared_ptr<connect_request>& creq,
                        std::vector<std::string> offered, std::string accept) {
    if (!ctx_.connect_hook) return accept_upgrade(std::move(info), offered, std::move(accept), {});
    // The connection_info outlives the call: the hook's callback may run later.
    auto held = std::make_shared<connection_info>(std::move(info));
    auto offer = std::make_shared<std::vector<std::string>>(std::move(offered));
    ctx_.connect_hook->on_connect(*held, *creq, *offer,
                                  [self = this->shared_from_this(), held, offer, creq,
                                   accept = std::move(accept)](connect_decision d) mutable {
                                    if (self->done_) return;
                                    if (!d.accept) return self->reject_upgrade(std::move(d));
                                    self->accept_upgrade(std::move(*held), *offer,
                                                         std::move(accept), std::move(d));
                                  });
  }

  void refuse_auth(const connection_info& info, const auth_outcome& a) {
    const auto reason = a.status == 401   ? reject_reason::unauthorized
                        : a.status == 403 ? reject_reason::forbidden
                                          : reject_reason::auth_error;
    worker_.metrics().reject(reason);
    ctx_.log.info("connection.unauthorized", {{"connectionId", info.id.view()},
                                              {"sourceIp", info.source_ip()},
                                              {"status", a.status},
                                              {"reason", a.reason}});
    if (a.status == 401) {
      auto res = json_error(http::status::unauthorized, "unauthorized", a.reason);
      res.set(http::field::www_authenticate, "Bearer error=\"invalid_token\"");
      return write(std::move(res), 11, false, false);
    }
    if (a.status == 403) return reject(http::status::forbidden, "forbidden", a.reason);
    reject(http::status::internal_server_error, "internal_error", a.reason);
  }

  void accept_upgrade(connection_info info, const std::vector<std::string>& offered,
                      std::string accept, connect_decision decision) {
    if (!decision.subprotocol.empty()) {
      info.set_subprotocol(decision.subprotocol);
    } else if (auto chosen = ws::choose_subprotocol(offered, ctx_.cfg.websocket.subprotocols)) {
      info.set_subprotocol(*chosen);
    }
    if (!decision.user_id.empty()) info.set_user_id(decision.user_id);
    if (decision.authorizer) {
      // $connect's own principalId/context (a Herald extension) add to what auth found.
      if (info.authorizer) {
        auto merged = std::make_shared<string_pairs>(*info.authorizer);
        for (const auto& [k, v] : *decision.authorizer)
          set_pair(*merged, k, v);
        info.authorizer = std::move(merged);
      } else {
        info.authorizer = std::move(decision.authorizer);
      }
    }
    if (sse_) {
      done_ = true;
      timer_.cancel();
      info.set_subprotocol({});
      return start_sse_session(
          std::move(stream_), std::move(info), std::move(*slot_),
          {std::move(sse_target_), std::move(sse_resume_), std::move(sse_cors_origin_)}, worker_,
          ctx_);
    }
    // The 101 written as text: Beast's serializer cost a fifth of a connect's instructions.
    // Every value is safe in a header: the accept key is base64, the subprotocol one the
    // client offered (as parsed from its request) and the extension's answer our own.
    auto res = std::make_shared<std::string>();
    res->reserve(256);
    res->append(
        "HTTP/1.1 101 Switching Protocols\r\nServer: herald\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: ");
    res->append(accept).append("\r\n");
    if (!info.subprotocol().empty())
      res->append("Sec-WebSocket-Protocol: ").append(info.subprotocol()).append("\r\n");
    if (deflate_)
      res->append("Sec-WebSocket-Extensions: ").append(deflate_->response).append("\r\n");
    res->append("\r\n");
    // The session starts even if this write fails: it then ends at once, and $disconnect
    // still fires for a connection whose $connect succeeded.
    asio::async_write(stream_, asio::buffer(*res),
                      [self = this->shared_from_this(), res, info = std::move(info)](
                          error_code, std::size_t) mutable { self->hand_over(std::move(info)); });
  }

  void reject_upgrade(connect_decision d) {
    worker_.metrics().reject(reject_reason::connect_route);
    http_response res{static_cast<http::status>(d.status), 11};
    res.set(http::field::content_type, d.content_type.empty() ? "text/plain" : d.content_type);
    res.body() = std::move(d.body);
    write(std::move(res), 11, false, false);
  }

  void hand_over(connection_info info) {
    done_ = true;
    timer_.cancel();
    // Frames the client sent right behind its request are already in our buffer.
    std::string initial = beast::buffers_to_string(buffer_.data());
    start_websocket_session(std::move(stream_), std::move(initial), std::move(info),
                            std::move(*slot_), deflate_ ? deflate_->server_window_bits : 0, worker_,
                            ctx_);
  }

  void do_close() {
    if (done_) return;
    done_ = true;
    timer_.cancel();
    if constexpr (!is_tls) {
      // Lingering close: stop sending, then read and discard what the client is still sending
      // (bounded), so a client that was cut off mid-upload still reads our answer (e.g. 413)
      // instead of a connection reset.
      error_code ec;
      stream_.shutdown(tcp::socket::shutdown_send, ec);
      if (!ec) {
        timer_.expires_after(std::chrono::seconds(2));
        timer_.async_wait([self = this->shared_from_this()](error_code tec) {
          if (!tec) self->close_now();
        });
        return drain();
      }
    }
    close_now();
  }

  void drain() {
    if (!linger_buffer_) linger_buffer_ = std::make_unique<char[]>(linger_chunk);
    stream_.async_read_some(asio::buffer(linger_buffer_.get(), linger_chunk),
                            [self = this->shared_from_this()](error_code ec, std::size_t n) {
                              self->lingered_ += n;
                              if (ec || self->lingered_ > linger_limit) return self->close_now();
                              self->drain();
                            });
  }

  void close_now() {
    timer_.cancel();
    error_code ignored;
    stream_.lowest_layer().close(ignored);
  }

  static constexpr std::size_t linger_chunk = 16 * 1024;
  static constexpr std::size_t linger_limit = 8 * 1024 * 1024;
  std::optional<admission> slot_;                 // a place under websocket.max_connections
  std::optional<ws::deflate_agreement> deflate_;  // permessage-deflate, when agreed
  bool sse_ = false;                              // an SSE stream, not a WebSocket upgrade
  std::string sse_target_, sse_resume_, sse_cors_origin_;
  std::unique_ptr<char[]> linger_buffer_;
  std::size_t lingered_ = 0;

  Stream stream_;
  beast::flat_buffer buffer_;
  listener_role role_;
  worker& worker_;
  server_context& ctx_;
  asio::steady_timer timer_;
  steady_clock::time_point accepted_at_;
  std::string remote_ip_;
  std::optional<http::request_parser<http::string_body>> parser_;
  unsigned requests_ = 0;
  bool done_ = false;
};

// TLS server handshake, then HTTP over TLS.
class tls_handshake : public std::enable_shared_from_this<tls_handshake> {
 public:
  tls_handshake(tcp::socket socket, listener_role role, worker& w, server_context& ctx,
                steady_clock::time_point accepted_at)
      : stream_(std::move(socket), ctx.tls->current()->native_handle()),
        role_(role),
        worker_(w),
        ctx_(ctx),
        timer_(w.context()),
        accepted_at_(accepted_at) {}

  void run() {
    if (!stream_.ok()) {
      ctx_.log.warn("tls.handshake_failed", {{"error", "cannot make a TLS connection object"}});
      return;  // the socket closes with this object
    }
    timer_.expires_after(ctx_.cfg.tls.handshake_timeout);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec) return;
      error_code ignored;
      self->stream_.lowest_layer().close(ignored);
    });
    stream_.async_handshake([self = shared_from_this()](error_code ec) { self->on_handshake(ec); });
  }

 private:
  void on_handshake(error_code ec) {
    timer_.cancel();
    if (ec) {
      ctx_.log.debug("tls.handshake_failed", {{"error", ec.message()}});
      return;  // the stream closes with this object
    }
    std::make_shared<http_session<tls_stream>>(std::move(stream_), beast::flat_buffer(), role_,
                                               worker_, ctx_, accepted_at_)
        ->run();
  }

  tls_stream stream_;
  listener_role role_;
  worker& worker_;
  server_context& ctx_;
  asio::steady_timer timer_;
  steady_clock::time_point accepted_at_;
};

// Looks at the first bytes to tell a TLS ClientHello from plain HTTP. tls.mode=auto serves both;
// tls.mode=required answers plain HTTP with a 400 that says why (as nginx does), then closes,
// instead of dropping the connection without a word.
class tls_detector : public std::enable_shared_from_this<tls_detector> {
 public:
  tls_detector(tcp::socket socket, listener_role role, worker& w, server_context& ctx,
               steady_clock::time_point accepted_at, bool plain_allowed)
      : socket_(std::move(socket)),
        role_(role),
        worker_(w),
        ctx_(ctx),
        timer_(w.context()),
        accepted_at_(accepted_at),
        plain_allowed_(plain_allowed) {}

  void run() {
    timer_.expires_after(ctx_.cfg.tls.handshake_timeout);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec) return;
      error_code ignored;
      self->socket_.close(ignored);
    });
    detect();
  }

 private:
  // Peeks at the first byte, leaving it in the socket for whichever reads it next (OpenSSL reads
  // the socket itself): a TLS record starts with 0x16 (handshake), which no HTTP request does.
  void detect() {
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](error_code ec) {
      if (ec) {
        self->timer_.cancel();
        return;
      }
      unsigned char first = 0;
      const ssize_t got = ::recv(self->socket_.native_handle(), &first, 1, MSG_PEEK);
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        self->detect();
        return;
      }
      self->timer_.cancel();
      if (got <= 0) return;  // closed before a byte, or failed
      self->on_detect(first == 0x16);
    });
  }

  void on_detect(bool tls) {
    if (tls) {
      std::make_shared<tls_handshake>(std::move(socket_), role_, worker_, ctx_, accepted_at_)
          ->run();
    } else if (!plain_allowed_) {
      static constexpr std::string_view body =
          R"({"error":"tls_required","message":"this port speaks TLS only: use https:// or wss://"})";
      static const std::string answer =
          "HTTP/1.1 400 Bad Request\r\nServer: herald\r\nContent-Type: application/json\r\n"
          "Connection: close\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
      ctx_.log.debug("tls.plain_http_refused", {});
      timer_.expires_after(ctx_.cfg.tls.handshake_timeout);
      timer_.async_wait([self = shared_from_this()](error_code wait_ec) {
        if (wait_ec) return;
        error_code ignored;
        self->socket_.close(ignored);
      });
      asio::async_write(socket_, asio::buffer(answer),
                        [self = shared_from_this()](error_code, std::size_t) {
                          self->timer_.cancel();
                          error_code ignored;
                          self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
                          self->socket_.close(ignored);
                        });
    } else {
      std::make_shared<http_session<plain_stream>>(std::move(socket_), beast::flat_buffer(), role_,
                                                   worker_, ctx_, accepted_at_)
          ->run();
    }
  }

  tcp::socket socket_;
  listener_role role_;
  worker& worker_;
  server_context& ctx_;
  asio::steady_timer timer_;
  steady_clock::time_point accepted_at_;
  bool plain_allowed_;
};

}  // namespace

void serve_connection(tcp::socket socket, listener_role role, worker& w, server_context& ctx) {
  const auto accepted_at = steady_clock::now();
  error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);  // we batch writes ourselves
  const tls_mode mode = role == listener_role::client ? ctx.cfg.tls.mode : tls_mode::off;
  switch (mode) {
    case tls_mode::off:
      std::make_shared<http_session<plain_stream>>(std::move(socket), beast::flat_buffer(), role, w,
                                                   ctx, accepted_at)
          ->run();
      break;
    case tls_mode::auto_detect:
      std::make_shared<tls_detector>(std::move(socket), role, w, ctx, accepted_at, true)->run();
      break;
    case tls_mode::required:
      std::make_shared<tls_detector>(std::move(socket), role, w, ctx, accepted_at, false)->run();
      break;
  }
}

}  // namespace herald::net
