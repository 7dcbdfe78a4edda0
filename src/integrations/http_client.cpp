#include "integrations/http_client.hpp"

#include <algorithm>

#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "herald/version.hpp"

namespace herald::net {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

// The backend closed a kept-alive connection: nothing of the request was processed.
bool stale_error(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted;
}

std::string describe(const error_code& ec, const char* step) {
  if (ec == beast::error::timeout) return std::string(step) + ": timeout";
  if (ec == http::error::body_limit) return "response too large";
  return std::string(step) + ": " + ec.message();
}

}  // namespace

// One connection to the backend; carries one request at a time.
class http_client::connection : public std::enable_shared_from_this<connection> {
 public:
  virtual ~connection() = default;
  virtual void run(request_ptr rq) = 0;
  virtual void close() = 0;

  bool reused = false;
  steady_clock::time_point idle_since;
};

template <class Stream>
class http_client::connection_impl final : public http_client::connection {
 public:
  static constexpr bool is_tls = !std::is_same_v<Stream, beast::tcp_stream>;

  connection_impl(const std::shared_ptr<http_client>& owner, Stream stream)
      : owner_(owner),
        opts_(owner->opts_),
        resolver_(owner->resolver_),
        stream_(std::move(stream)) {}

  void run(request_ptr rq) override {
    rq_ = std::move(rq);
    if (connected_) return write();
    resolver_.async_resolve(opts_.url.host, opts_.url.port,
                            [self = self()](error_code ec, tcp::resolver::results_type results) {
                              self->on_resolve(ec, results);
                            });
  }

  void close() override {
    error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().close();
  }

 private:
  std::shared_ptr<connection_impl> self() {
    return std::static_pointer_cast<connection_impl>(shared_from_this());
  }
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void on_resolve(error_code ec, const tcp::resolver::results_type& results) {
    if (ec) return fail("resolve " + opts_.url.host + ": " + ec.message(), false);
    lowest().expires_at(std::min(rq_->deadline, steady_clock::now() + opts_.connect_timeout));
    lowest().async_connect(
        results, [self = self()](error_code cec, const tcp::endpoint&) { self->on_connect(cec); });
  }

  void on_connect(error_code ec) {
    if (ec) return fail(describe(ec, "connect"), false);
    if constexpr (is_tls) {
      // SNI, and the certificate must name the host we asked for.
      // SSL_set_tlsext_host_name, without the macro's C-style cast.
      if (SSL_ctrl(stream_.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                   const_cast<char*>(opts_.url.host.c_str())) != 1) {
        return fail("tls: cannot set server name", false);
      }
      stream_.set_verify_callback(ssl::host_name_verification(opts_.url.host));
      lowest().expires_at(std::min(rq_->deadline, steady_clock::now() + opts_.connect_timeout));
      stream_.async_handshake(ssl::stream_base::client,
                              [self = self()](error_code hec) { self->on_handshake(hec); });
    } else {
      connected_ = true;
      write();
    }
  }

  void on_handshake(error_code ec) {
    if (ec) return fail(describe(ec, "tls handshake"), false);
    connected_ = true;
    write();
  }

  void write() {
    req_ = {};
    req_.method(http::verb::post);
    req_.target(opts_.url.target);
    req_.version(11);
    req_.set(http::field::host, opts_.url.host_header);
    req_.set(http::field::user_agent, std::string("herald/") + herald::version);
    req_.set(http::field::content_type, "application/json");
    for (const auto& [k, v] : rq_->headers)
      req_.set(k, v);
    req_.body() = rq_->body;  // kept in rq_ in case of a retry
    req_.keep_alive(true);
    req_.prepare_payload();
    lowest().expires_at(rq_->deadline);
    http::async_write(stream_, req_,
                      [self = self()](error_code ec, std::size_t) { self->on_write(ec); });
  }

  void on_write(error_code ec) {
    if (ec) return fail(describe(ec, "write"), stale_error(ec));
    parser_.emplace();
    parser_->body_limit(opts_.max_response_bytes);
    http::async_read(stream_, buffer_, *parser_,
                     [self = self()](error_code rec, std::size_t) { self->on_read(rec); });
  }

  void on_read(error_code ec) {
    if (ec) return fail(describe(ec, "read"), stale_error(ec) && !parser_->got_some());
    auto& res = parser_->get();
    client_response out;
    out.status = res.result_int();
    for (const auto& field : res)
      out.headers.emplace_back(field.name_string(), field.value());
    out.body = std::move(res.body());
    const bool keep_alive = res.keep_alive();
    parser_.reset();
    auto rq = std::move(rq_);
    if (auto owner = owner_.lock())
      owner->on_success(shared_from_this(), rq, std::move(out), keep_alive);
  }

  void fail(std::string why, bool stale) {
    close();
    auto rq = std::move(rq_);
    if (auto owner = owner_.lock())
      owner->on_failure(shared_from_this(), rq, std::move(why), stale && reused);
  }

  std::weak_ptr<http_client> owner_;
  const options& opts_;
  tcp::resolver& resolver_;
  Stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  std::optional<http::response_parser<http::string_body>> parser_;
  request_ptr rq_;
  bool connected_ = false;
};

http_client::http_client(asio::io_context& ioc, options opts)
    : ioc_(ioc), opts_(std::move(opts)), resolver_(ioc), sweep_timer_(ioc) {}

http_client::~http_client() {
  for (auto& c : idle_)
    c->close();
}

void http_client::post(std::string body, string_pairs headers, client_callback done) {
  auto rq = std::make_shared<request_state>();
  rq->body = std::move(body);
  rq->headers = std::move(headers);
  rq->deadline = steady_clock::now() + opts_.timeout;
  rq->done = std::move(done);
  dispatch(std::move(rq));
}

void http_client::dispatch(request_ptr rq) {
  if (pending_.empty()) {
    // Most recently used first: the least likely to have been closed by the backend.
    while (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      if (steady_clock::now() - c->idle_since < opts_.keepalive_timeout)
        return c->run(std::move(rq));
      c->close();
      --open_;
    }
    if (open_ < opts_.max_connections) return open_connection(std::move(rq));
  }
  if (pending_.size() >= opts_.max_pending) {
    auto done = std::move(rq->done);
    return done("backend saturated: " + std::to_string(open_) + " requests in flight and " +
                    std::to_string(pending_.size()) + " waiting",
                {});
  }
  pending_.push_back(std::move(rq));
}

void http_client::open_connection(request_ptr rq) {
  ++open_;
  std::shared_ptr<connection> c;
  if (opts_.url.tls) {
    c = std::make_shared<connection_impl<beast::ssl_stream<beast::tcp_stream>>>(
        shared_from_this(),
        beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(ioc_), *opts_.tls));
  } else {
    c = std::make_shared<connection_impl<beast::tcp_stream>>(shared_from_this(),
                                                             beast::tcp_stream(ioc_));
  }
  c->run(std::move(rq));
}

void http_client::on_success(const std::shared_ptr<connection>& c, const request_ptr& rq,
                             client_response res, bool keep_alive) {
  auto done = std::move(rq->done);
  if (keep_alive && opts_.keepalive_timeout.count() > 0) {
    c->reused = true;
    c->idle_since = steady_clock::now();
    idle_.push_back(c);
    schedule_sweep();
  } else {
    c->close();
    --open_;
  }
  next_pending();
  done({}, std::move(res));
}

void http_client::on_failure(const std::shared_ptr<connection>&, const request_ptr& rq,
                             std::string error, bool retryable) {
  --open_;
  if (retryable && !rq->retried && steady_clock::now() < rq->deadline) {
    // The backend closed the idle connection under us; the request was never seen. Once.
    rq->retried = true;
    return open_connection(rq);
  }
  auto done = std::move(rq->done);
  next_pending();
  done(error, {});
}

void http_client::next_pending() {
  while (!pending_.empty()) {
    auto rq = pending_.front();
    if (steady_clock::now() >= rq->deadline) {
      pending_.pop_front();
      auto done = std::move(rq->done);
      done("timeout waiting for a free connection", {});
      continue;
    }
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      pending_.pop_front();
      c->run(std::move(rq));
      continue;
    }
    if (open_ >= opts_.max_connections) break;
    pending_.pop_front();
    open_connection(std::move(rq));
  }
}

void http_client::schedule_sweep() {
  if (sweep_scheduled_) return;
  sweep_scheduled_ = true;
  sweep_timer_.expires_after(opts_.keepalive_timeout);
  sweep_timer_.async_wait([weak = weak_from_this()](error_code ec) {
    if (ec) return;
    if (auto self = weak.lock()) self->sweep_idle();
  });
}

void http_client::sweep_idle() {
  sweep_scheduled_ = false;
  const auto now = steady_clock::now();
  std::erase_if(idle_, [&](const std::shared_ptr<connection>& c) {
    if (now - c->idle_since < opts_.keepalive_timeout) return false;
    c->close();
    --open_;
    return true;
  });
  if (!idle_.empty()) schedule_sweep();
}

}  // namespace herald::net
