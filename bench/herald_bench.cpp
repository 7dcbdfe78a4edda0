// herald-bench: a WebSocket load generator for Herald and for the baseline gateway (any server
// that speaks the same small protocol: {"action":"subscribe","channel":C} answered by a frame,
// publications delivered as {"type":"message","channel":C,"data":{...}}, PUBLISH
// herald:channel:C through Redis, POST /v1/publish over HTTP, and an echo route).
//
// Scenarios (one per run; bench/run drives them against both servers):
//   connect   N connections, `--in-flight` handshakes at once (and at most `--connect-rate`
//             started per second): connections/s, failures
//   idle      N idle connections: server RSS per connection (/proc/PID/status VmRSS deltas);
//             without --pid it only holds them for `--hold` s (bench/scale runs several)
//   fanout    N subscribers, a burst of `--messages` publications: deliveries/s, latency
//   latency   N subscribers, `--rate` publications/s for `--duration` s: latency percentiles
//   echo      N connections in ping-pong with the echo route: round trips/s
//   listen    N subscribers (spread over `--ports`) held until SIGTERM or `--hold` s, for
//             bench/scale's runs across nodes: on SIGUSR1 prints one JSON line with what
//             arrived since the last one (deliveries, every latency in µs, connections open,
//             lost and reconnected); with --reconnect a connection that ends comes back after
//             a jittered backoff and subscribes again (as the SDK does)
//   publish   `--messages` publications and nothing else (the fan-out a listen run receives)
//
// Clients run on one thread (the server gets the other core); several loopback source
// addresses (127.0.0.1..127.0.0.S) let N exceed one address's ephemeral ports. Every payload
// carries its send time (steady clock, shared by all processes on Linux), so latency includes
// the last recipient of a fan-out. Output: a table, or one JSON object with --json.
#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <openssl/ssl.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "herald/ws/deflate.hpp"
#include "herald/ws/frame.hpp"

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;

namespace {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
      .count();
}

struct options {
  std::string scenario;
  std::string host = "127.0.0.1";
  unsigned short port = 8080;
  unsigned short http_port = 8081;  // POST /v1/publish
  std::string redis_host = "127.0.0.1";
  unsigned short redis_port = 6379;
  std::string publish_via = "redis";  // redis | http
  std::string channel = "bench";
  std::string label = "server";
  int connections = 1000;
  int in_flight = 500;
  double connect_rate = 0;  // connects started per second at most (0: unpaced)
  int sources = 8;
  int messages = 300;
  int size = 100;
  double rate = 1000;
  double duration = 5;
  int pid = 0;
  double hold = 2;  // idle: seconds to keep the connections open before measuring
  bool json = false;
  bool sharded = false;     // a Redis Cluster: SPUBLISH herald:channel:{name} on its slot's primary
  bool deflate = false;     // offer permessage-deflate; inflate what arrives compressed
  bool tls = false;         // wss:// (any certificate accepted: the server is ours)
  bool tls_resume = false;  // connect: then every client reconnects resuming its TLS session
  int inflate_every = 1;    // ... one compressed message in N (the rest counted, not read)
  std::string payload = "padding";  // padding ("t" and x's) | notification (realistic JSON)
  std::string
      before_publish;  // shell command run once subscribed (bench/callgrind zeroes counters)
  std::string after_deliveries;       // ... and once everything arrived, before the clients close
  std::vector<unsigned short> ports;  // --ports: client i connects to ports[i % size]
  bool reconnect = false;             // listen: reconnect and subscribe again when dropped
  std::string ready_file;             // listen: written once every connection is subscribed
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr
      << "herald-bench: " << why << "\n"
      << "usage: herald-bench SCENARIO [--port P] [--http-port P] [--redis-port P]\n"
         "  [--connections N] [--in-flight N] [--connect-rate R] [--sources S] [--messages M]\n"
         "  [--size B] [--rate R] [--duration S] [--publish-via redis|http] [--pid PID] [--hold "
         "S]\n"
         "  [--label NAME] [--before-publish CMD] [--after-deliveries CMD] [--sharded] [--json]\n"
         "  [--deflate] [--inflate-every N] [--payload padding|notification] [--tls] "
         "[--tls-resume]\n"
         "  [--ports P1,P2,...] [--reconnect] [--ready-file F]\n"
         "scenarios: connect idle fanout latency echo listen publish\n";
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  if (argc < 2) usage("no scenario");
  o.scenario = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    const auto number = [&]() {
      const std::string v = value();
      try {
        return std::stod(v);
      } catch (...) {
        usage(a + ": not a number: " + v);
      }
    };
    if (a == "--json")
      o.json = true;
    else if (a == "--tls")
      o.tls = true;
    else if (a == "--tls-resume")
      o.tls = o.tls_resume = true;
    else if (a == "--deflate")
      o.deflate = true;
    else if (a == "--inflate-every")
      o.inflate_every = static_cast<int>(number());
    else if (a == "--payload")
      o.payload = value();
    else if (a == "--sharded")
      o.sharded = true;
    else if (a == "--host")
      o.host = value();
    else if (a == "--port")
      o.port = static_cast<unsigned short>(number());
    else if (a == "--http-port")
      o.http_port = static_cast<unsigned short>(number());
    else if (a == "--redis-port")
      o.redis_port = static_cast<unsigned short>(number());
    else if (a == "--publish-via")
      o.publish_via = value();
    else if (a == "--channel")
      o.channel = value();
    else if (a == "--label")
      o.label = value();
    else if (a == "--connections")
      o.connections = static_cast<int>(number());
    else if (a == "--in-flight")
      o.in_flight = static_cast<int>(number());
    else if (a == "--connect-rate")
      o.connect_rate = number();
    else if (a == "--sources")
      o.sources = static_cast<int>(number());
    else if (a == "--messages")
      o.messages = static_cast<int>(number());
    else if (a == "--size")
      o.size = static_cast<int>(number());
    else if (a == "--rate")
      o.rate = number();
    else if (a == "--duration")
      o.duration = number();
    else if (a == "--pid")
      o.pid = static_cast<int>(number());
    else if (a == "--hold")
      o.hold = number();
    else if (a == "--before-publish")
      o.before_publish = value();
    else if (a == "--after-deliveries")
      o.after_deliveries = value();
    else if (a == "--ports") {
      std::stringstream list(value());
      std::string item;
      while (std::getline(list, item, ',')) {
        int port = 0;
        const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), port);
        if (ec != std::errc() || end != item.data() + item.size() || port < 1 || port > 65535)
          usage("--ports: not a port: " + item);
        o.ports.push_back(static_cast<unsigned short>(port));
      }
    } else if (a == "--reconnect")
      o.reconnect = true;
    else if (a == "--ready-file")
      o.ready_file = value();
    else
      usage("unknown option " + a);
  }
  if (o.publish_via != "redis" && o.publish_via != "http") usage("--publish-via: redis or http");
  if (o.inflate_every < 1) usage("--inflate-every: 1 or more");
  if (o.payload != "padding" && o.payload != "notification")
    usage("--payload: padding or notification");
  if (o.connections < 1 || o.sources < 1 || o.sources > 250 || o.in_flight < 1)
    usage("bad --connections/--sources/--in-flight");
  if (o.reconnect && o.tls) usage("--reconnect: plain connections only");
  return o;
}

long rss_kib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// The process's CPU time so far (user + system), in seconds; -1 when it cannot be read.
double cpu_seconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  const auto close = stat.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 2));
  std::string f;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(f);  // utime, stime
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Latency samples in microseconds.
struct latencies {
  std::vector<std::uint32_t> us;
  void add(std::int64_t ns) {
    us.push_back(static_cast<std::uint32_t>(std::clamp<std::int64_t>(ns / 1000, 0, 4'000'000'000)));
  }
  double pct(double p) {
    if (us.empty()) return 0;
    const std::size_t k = std::min(us.size() - 1, static_cast<std::size_t>(p / 100.0 * us.size()));
    std::nth_element(us.begin(), us.begin() + static_cast<std::ptrdiff_t>(k), us.end());
    return us[k] / 1000.0;
  }
  double max() const { return us.empty() ? 0 : *std::max_element(us.begin(), us.end()) / 1000.0; }
};

struct stats {
  int connected = 0;
  int failed = 0;
  int subscribed = 0;
  std::uint64_t deliveries = 0;
  std::uint64_t echoes = 0;
  std::uint64_t bytes_in = 0;         // read from the sockets, handshakes included
  int compressed = 0;                 // connections that agreed to permessage-deflate
  std::uint64_t inflated = 0;         // messages inflated
  std::uint64_t compressed_seen = 0;  // messages that arrived compressed (--inflate-every)
  std::int64_t last_delivery_ns = 0;
  int lost = 0;        // --reconnect: connections that ended
  int reconnects = 0;  // ... and came back
  latencies lat;
};

// The payload every publication carries: its send time and padding up to --size bytes.
// The data of a publication, `size` bytes, with its send time first. "padding" is x's (the
// fan-out figures); "notification" reads like a real one (ids, names, prices, an order's items),
// for compression figures: a run of x's would compress far better than anything real.
std::string make_data(std::int64_t t, const options& o) {
  std::string s = "{\"t\":" + std::to_string(t);
  if (o.payload == "notification") {
    thread_local std::mt19937_64 rng(42);
    const auto num = [](std::uint64_t v, int digits) {
      std::string d = std::to_string(v % 1'000'000'000'000ULL);
      return std::string(static_cast<std::size_t>(std::max(0, digits - static_cast<int>(d.size()))),
                         '0') +
             d;
    };
    static const char* const products[] = {"USB-C cable 2 m",
                                           "Wireless mouse",
                                           "Laptop stand",
                                           "Mechanical keyboard",
                                           "27-inch monitor",
                                           "Webcam HD",
                                           "Noise-cancelling headphones",
                                           "Desk lamp"};
    static const char* const statuses[] = {"confirmed", "packed", "shipped", "out_for_delivery"};
    s += ",\"type\":\"order.updated\",\"order\":{\"id\":\"ord_" + num(rng(), 10) +
         "\",\"status\":\"" + statuses[rng() % 4] + "\",\"carrier\":\"DHL\",\"tracking\":\"JD" +
         num(rng(), 12) + "\",\"eta\":\"2026-12-" + num(1 + rng() % 28, 2) +
         "\"},\"customer\":{\"id\":\"cus_" + num(rng(), 8) +
         "\",\"name\":\"Alice Example\"},\"items\":[";
    bool first = true;
    while (static_cast<int>(s.size()) < o.size - 90) {
      if (!first) s += ',';
      first = false;
      s += "{\"sku\":\"SKU-" + num(rng(), 6) + "\",\"name\":\"" + products[rng() % 8] +
           "\",\"quantity\":" + std::to_string(1 + rng() % 5) +
           ",\"price\":" + std::to_string(1 + rng() % 300) + "." + num(rng() % 100, 2) + "}";
    }
    s += "]}";
    return s;
  }
  s += ",\"p\":\"";
  const int pad = std::max(0, o.size - static_cast<int>(s.size()) - 2);
  s.append(static_cast<std::size_t>(pad), 'x');
  s += "\"}";
  return s;
}

// The send time inside a delivered frame: the number after the first "t": (a hand-rolled
// scan: std::string_view::find walks every quote of the envelope with memchr, which made the
// load tool, not the server, the bottleneck of the fan-out scenario).
std::optional<std::int64_t> sent_at(std::string_view frame) {
  const char* p = frame.data();
  const std::size_t n = frame.size();
  for (std::size_t i = 0; i + 4 < n; ++i) {
    if (p[i] != 't' || p[i + 1] != '"' || p[i + 2] != ':' || i == 0 || p[i - 1] != '"') continue;
    std::int64_t t = 0;
    const auto [end, ec] = std::from_chars(p + i + 3, p + n, t);
    if (ec != std::errc()) return std::nullopt;
    return t;
  }
  return std::nullopt;
}

// What the clients of a fleet share: the read buffer (they all run on one thread, and each read
// is decoded before the next one starts) and, over TLS, the client context.
struct shared_state {
  std::vector<char> scratch = std::vector<char>(256 * 1024);
  std::unique_ptr<asio::ssl::context> tls;
  std::mt19937 rng{42};  // reconnect jitter
};

// One connection of the fleet, plain or TLS (basic_client below).
class client : public std::enable_shared_from_this<client> {
 public:
  virtual ~client() = default;
  // Connects (from source address 127.0.0.(1 + index % sources)), upgrades, then calls `ready`.
  virtual void start(tcp::endpoint server, std::function<void(bool)> ready) = 0;
  virtual void subscribe() = 0;
  virtual void ping_pong() = 0;
  virtual void close() = 0;
  // TLS: whether the last handshake resumed a session.
  virtual bool resumed() const { return false; }
};

template <class Stream>
class basic_client final : public client, herald::ws::frame_handler {
  static constexpr bool is_tls = !std::is_same_v<Stream, tcp::socket>;

 public:
  basic_client(asio::io_context& ioc, stats& s, shared_state& shared, const options& o, int index)
      : ioc_(ioc),
        shared_(shared),
        stream_(make_stream(ioc, shared)),
        tls_(shared.tls.get()),
        stats_(s),
        scratch_(shared.scratch),
        opt_(o),
        index_(index),
        decoder_(limits(o)) {}
  ~basic_client() override {
    if constexpr (is_tls) {
      if (session_ != nullptr) SSL_SESSION_free(session_);
    }
  }

  void start(tcp::endpoint server, std::function<void(bool)> ready) override {
    ready_ = std::move(ready);
    server_ = server;
    ++generation_;  // handlers of the last connection, if any still run, change nothing
    if (started_) {
      // A reconnect: a fresh socket and protocol state.
      error_code ignored;
      lowest().close(ignored);
      decoder_ = herald::ws::decoder(limits(opt_));
      response_.clear();
      out_pending_.clear();
      out_writing_.clear();
      writing_ = false;
      if constexpr (is_tls) {
        // A fresh TLS state, offered the session of the last one if there was one (the fleet or
        // the generation check has run the old connection's handlers out). The old connection
        // was dropped on purpose: marked shut down, or freeing its SSL would make the kept
        // session unresumable. emplace, not `= Stream(..)`: Asio's engine move-assignment leaks
        // the old SSL.
        SSL_set_shutdown(stream_->native_handle(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        stream_.emplace(ioc_, *tls_);
        if (session_ != nullptr) SSL_set_session(stream_->native_handle(), session_);
      }
    }
    started_ = true;
    error_code ec;
    lowest().open(tcp::v4(), ec);
    if (!ec) {
      const auto src =
          asio::ip::make_address_v4(0x7f000001u + static_cast<unsigned>(index_ % opt_.sources));
      lowest().bind(tcp::endpoint(src, 0), ec);
    }
    if (ec) return done(false);
    lowest().async_connect(server, [self = self()](error_code connect_ec) {
      if (connect_ec) return self->done(false);
      self->lowest().set_option(tcp::no_delay(true));
      if constexpr (is_tls) {
        self->stream_->async_handshake(asio::ssl::stream_base::client, [self](error_code tls_ec) {
          if (tls_ec) return self->done(false);
          self->handshake();
        });
      } else {
        self->handshake();
      }
    });
  }

  void send_text(std::string_view text) { send_frame(herald::ws::opcode::text, text); }

  void subscribe() override {
    send_text(R"({"action":"subscribe","channel":")" + opt_.channel + R"("})");
  }

  void ping_pong() override {
    echo_mode_ = true;
    send_text(make_data(now_ns(), opt_));
  }

  void close() override {
    closing_ = true;
    if (reconnect_timer_) reconnect_timer_->cancel();
    error_code ec;
    lowest().close(ec);
  }

  bool resumed() const override {
    if constexpr (is_tls) {
      return SSL_session_reused(const_cast<Stream&>(*stream_).native_handle()) == 1;
    } else {
      return false;
    }
  }

 private:
  std::shared_ptr<basic_client> self() {
    return std::static_pointer_cast<basic_client>(shared_from_this());
  }
  static Stream make_stream(asio::io_context& ioc, shared_state& shared) {
    if constexpr (is_tls) {
      return Stream(ioc, *shared.tls);
    } else {
      return Stream(ioc);
    }
  }
  tcp::socket& lowest() {
    if constexpr (is_tls) {
      return stream_->next_layer();
    } else {
      return *stream_;
    }
  }

  static herald::ws::decoder_limits limits(const options& o) {
    herald::ws::decoder_limits l;
    l.require_masked = false;  // server frames are not masked
    l.allow_compressed = o.deflate;
    l.max_frame_bytes = l.max_message_bytes = 1 << 20;
    return l;
  }

  // Appends a masked frame to the output; one write at a time on the socket (a pong may come
  // while a message is being written). At most a few frames wait: the scenarios send one
  // message per connection at a time.
  void send_frame(herald::ws::opcode op, std::string_view payload) {
    std::array<std::uint8_t, herald::ws::max_header_bytes> h{};
    const std::array<std::uint8_t, 4> key{0x12, 0x34, 0x56, 0x78};
    const auto n = herald::ws::encode_masked_header(h.data(), op, payload.size(), key);
    const std::size_t at = out_pending_.size();
    out_pending_.append(reinterpret_cast<const char*>(h.data()), n);
    out_pending_.append(payload);
    herald::ws::apply_mask(out_pending_.data() + at + n, payload.size(), key);
    write_pending();
  }

  void write_pending() {
    if (writing_ || out_pending_.empty()) return;
    writing_ = true;
    out_writing_.swap(out_pending_);
    asio::async_write(*stream_, asio::buffer(out_writing_),
                      [self = self(), gen = generation_](error_code ec, std::size_t) {
                        if (gen != self->generation_) return;  // a reconnect since
                        self->writing_ = false;
                        self->out_writing_.clear();
                        if (ec) return;
                        self->write_pending();
                      });
  }

  void handshake() {
    request_ =
        "GET / HTTP/1.1\r\nHost: " + opt_.host + ":" + std::to_string(opt_.port) +
        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
        (opt_.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                      : "") +
        "\r\n";
    asio::async_write(*stream_, asio::buffer(request_),
                      [self = self()](error_code ec, std::size_t) {
                        if (ec) return self->done(false);
                        self->read_response();
                      });
  }

  void read_response() {
    stream_->async_read_some(asio::buffer(buf_), [self = self()](error_code ec, std::size_t n) {
      if (ec) return self->done(false);
      self->response_.append(self->buf_.data(), n);
      const auto end = self->response_.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (self->response_.size() > 8192) return self->done(false);
        return self->read_response();
      }
      if (self->response_.compare(0, 12, "HTTP/1.1 101") != 0) return self->done(false);
      self->stats_.bytes_in += self->response_.size();
      if (self->response_.substr(0, end).find("permessage-deflate") != std::string::npos)
        ++self->stats_.compressed;
      std::string rest = self->response_.substr(end + 4);
      self->response_.clear();
      self->response_.shrink_to_fit();
      self->request_.clear();
      self->request_.shrink_to_fit();
      if constexpr (is_tls) {
        // Keep the session for a reconnect (TLS 1.3 sends its tickets after the handshake:
        // they have arrived with the 101).
        if (self->opt_.tls_resume && self->session_ == nullptr)
          self->session_ = SSL_get1_session(self->stream_->native_handle());
      }
      self->done(true);
      error_code nb;
      self->lowest().non_blocking(true, nb);
      self->received_at_ = now_ns();
      if (!rest.empty()) self->decoder_.feed(std::span<char>(rest.data(), rest.size()), *self);
      self->read();
    });
  }

  void done(bool ok) {
    if (!ready_) return;
    auto r = std::move(ready_);
    ready_ = nullptr;
    r(ok);
  }

  // A speculative async_read_some into the client's small buffer (Asio re-arms a plain
  // async_wait with an epoll_ctl call every time, a syscall per delivery), then, when that
  // filled it, synchronous reads into the shared buffer until the socket is empty. One receive
  // time for every frame of a read.
  void read() {
    stream_->async_read_some(
        asio::buffer(buf_), [self = self(), gen = generation_](error_code ec, std::size_t n) {
          if (gen != self->generation_) return;
          if (ec) return self->lost();
          self->received_at_ = now_ns();
          self->stats_.bytes_in += n;
          self->decoder_.feed(std::span<char>(self->buf_.data(), n), *self);
          // (TLS: the next asynchronous read takes what the record layer holds.)
          for (int round = 0; !is_tls && n == self->buf_.size() && round < 8; ++round) {
            error_code rec;
            n = self->stream_->read_some(asio::buffer(self->scratch_.data(), self->scratch_.size()),
                                         rec);
            if (rec) break;  // would_block: empty; a real error shows on the next read
            self->stats_.bytes_in += n;
            self->decoder_.feed(self->scratch_.first(n), *self);
            if (n < self->scratch_.size()) break;
          }
          self->read();
        });
  }

  bool on_message(herald::ws::opcode, std::string_view payload, bool compressed) override {
    if (compressed) {
      // --inflate-every N: a load tool of one thread cannot inflate a million messages a
      // second, so it reads one in N (their latency is the sample) and counts the others as
      // deliveries (during a fan-out, only publications are large enough to be compressed).
      ++stats_.compressed_seen;
      if (opt_.inflate_every > 1 && stats_.compressed_seen % opt_.inflate_every != 0) {
        ++stats_.deliveries;
        stats_.last_delivery_ns = std::max(stats_.last_delivery_ns, received_at_);
        return true;
      }
      // One inflater for the fleet (one thread), as a server's worker has.
      static herald::ws::inflater inflater;
      static std::string inflated;
      if (inflater.inflate(payload, 1 << 20, inflated) != herald::ws::inflater::status::ok)
        return false;
      ++stats_.inflated;
      payload = inflated;
    }
    if (echo_mode_) {
      if (auto t = sent_at(payload)) stats_.lat.add(received_at_ - *t);
      ++stats_.echoes;
      send_text(make_data(now_ns(), opt_));
      return true;
    }
    if (auto t = sent_at(payload)) {
      stats_.lat.add(received_at_ - *t);
      ++stats_.deliveries;
      stats_.last_delivery_ns = std::max(stats_.last_delivery_ns, received_at_);
      return true;
    }
    if (payload.find("\"subscribed\"") != std::string_view::npos) ++stats_.subscribed;
    return true;
  }
  bool on_ping(std::string_view payload) override {
    send_frame(herald::ws::opcode::pong, payload);  // keepalive
    return true;
  }
  bool on_pong(std::string_view) override { return true; }
  bool on_close(std::uint16_t code, std::string_view) override {
    if (opt_.reconnect) {
      // Answer the close (a draining node waits for it), then the node ends the connection.
      const std::array<char, 2> payload{static_cast<char>(code >> 8), static_cast<char>(code)};
      send_frame(herald::ws::opcode::close, std::string_view(payload.data(), payload.size()));
    }
    return false;
  }

  // --reconnect: the connection ended (the node restarted, drained or failed). It comes back
  // after a backoff with full jitter, as the JavaScript SDK does (uniform in [0, min(10 s,
  // 250 ms * 2^attempt)]), so that a restarted node is not hit by every client at once, and
  // subscribes again.
  void lost() {
    if (!opt_.reconnect || closing_ || lost_) return;
    lost_ = true;
    ++stats_.lost;
    error_code ignored;
    lowest().close(ignored);
    reconnect_later();
  }

  void reconnect_later() {
    const unsigned cap = std::min(10'000u, 250u << std::min(attempts_, 6));
    const auto delay = std::chrono::milliseconds(shared_.rng() % (cap + 1));
    if (!reconnect_timer_) reconnect_timer_ = std::make_unique<asio::steady_timer>(ioc_);
    reconnect_timer_->expires_after(delay);
    reconnect_timer_->async_wait([self = self()](error_code ec) {
      if (ec || self->closing_) return;
      self->start(self->server_, [self](bool ok) {
        if (!ok) {
          ++self->attempts_;
          return self->reconnect_later();
        }
        self->attempts_ = 0;
        self->lost_ = false;
        ++self->stats_.reconnects;
        self->subscribe();
      });
    });
  }

  asio::io_context& ioc_;
  shared_state& shared_;
  std::optional<Stream> stream_;  // optional: a TLS reconnect emplaces a fresh one
  asio::ssl::context* tls_;
  SSL_SESSION* session_ = nullptr;  // --tls-resume: the session to offer on reconnect
  bool started_ = false;            // start() ran before: a reconnect resets the state
  stats& stats_;
  std::span<char> scratch_;
  const options& opt_;
  int index_;
  herald::ws::decoder decoder_;
  std::array<char, 4096> buf_{};
  std::int64_t received_at_ = 0;  // when the bytes being decoded were read
  std::string request_;
  std::string response_;
  std::function<void(bool)> ready_;
  bool echo_mode_ = false;
  std::string out_pending_;
  std::string out_writing_;
  bool writing_ = false;
  // --reconnect
  tcp::endpoint server_;
  unsigned generation_ = 0;  // one per start(): a handler of an older connection is ignored
  std::unique_ptr<asio::steady_timer> reconnect_timer_;
  int attempts_ = 0;
  bool lost_ = false;
  bool closing_ = false;
};

// Opens o.connections clients with at most o.in_flight handshakes at once.
struct fleet {
  asio::io_context ioc{1};
  stats st;
  shared_state shared;
  std::vector<std::shared_ptr<client>> clients;
  double connect_seconds = 0;

  std::shared_ptr<client> make(const options& o, int index) {
    if (!o.tls) return std::make_shared<basic_client<tcp::socket>>(ioc, st, shared, o, index);
    if (!shared.tls) {
      shared.tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
      shared.tls->set_verify_mode(asio::ssl::verify_none);  // our own test certificate
    }
    return std::make_shared<basic_client<asio::ssl::stream<tcp::socket>>>(ioc, st, shared, o,
                                                                          index);
  }

  // Opens the fleet's connections; again after close_all(), the same clients reconnect (over
  // TLS with --tls-resume, offering their sessions).
  void open(const options& o) {
    st.connected = st.failed = 0;
    if (ioc.stopped()) ioc.restart();  // it ran out of work after close_all()
    const auto address = asio::ip::make_address(o.host);
    const auto server_for = [&](int index) {
      if (o.ports.empty()) return tcp::endpoint(address, o.port);
      return tcp::endpoint(address, o.ports[static_cast<std::size_t>(index) % o.ports.size()]);
    };
    int next = 0;
    int pending = 0;
    const auto t0 = clock_type::now();
    // --connect-rate: no more than R connects started per second (0: as fast as the
    // in-flight bound lets them go).
    const auto allowed = [&] {
      if (o.connect_rate <= 0) return o.connections;
      const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
      return std::min(o.connections, 1 + static_cast<int>(s * o.connect_rate));
    };
    std::function<void()> launch = [&] {
      const int limit = allowed();
      while (pending < o.in_flight && next < limit) {
        const int index = next++;
        if (static_cast<std::size_t>(index) == clients.size()) clients.push_back(make(o, index));
        auto c = clients[static_cast<std::size_t>(index)];
        ++pending;
        c->start(server_for(index), [&](bool ok) {
          --pending;
          ok ? ++st.connected : ++st.failed;
          launch();
        });
      }
    };
    launch();
    while (st.connected + st.failed < o.connections) {
      if (o.connect_rate > 0) {
        ioc.run_one_for(std::chrono::milliseconds(1));
        launch();  // the clock may allow more now
      } else {
        ioc.run_one();
      }
    }
    connect_seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  }

  // Closes every connection and runs their last handlers (the aborted reads) out.
  void close_all() {
    for (auto& c : clients)
      c->close();
    run_until([] { return false; }, 0.3);
  }

  int resumed() const {
    return static_cast<int>(
        std::count_if(clients.begin(), clients.end(), [](const auto& c) { return c->resumed(); }));
  }

  // Runs the loop until `pred` or `timeout`.
  template <class Pred>
  bool run_until(Pred pred, double timeout_s) {
    const auto deadline = clock_type::now() + std::chrono::duration<double>(timeout_s);
    while (!pred()) {
      if (clock_type::now() > deadline) return false;
      ioc.run_one_for(std::chrono::milliseconds(50));
    }
    return true;
  }

  void subscribe_all(double timeout_s = 60) {
    for (auto& c : clients)
      c->subscribe();
    run_until([&] { return st.subscribed >= st.connected; }, timeout_s);
  }
};

// ---- publishers (on their own thread) ----

class redis_publisher {
 public:
  explicit redis_publisher(const options& o) : opt_(o) {
    ctx_ = redisConnect(o.redis_host.c_str(), o.redis_port);
    if (!ctx_ || ctx_->err) throw std::runtime_error("redis: cannot connect");
    key_ = o.sharded ? "herald:channel:{" + o.channel + "}" : "herald:channel:" + o.channel;
    if (o.sharded) follow_slot();
  }
  ~redis_publisher() { redisFree(ctx_); }
  // Pipelined: append `n` PUBLISH (SPUBLISH on a cluster) commands, then read the replies.
  void burst(int n) {
    const char* format = opt_.sharded ? "SPUBLISH %b %b" : "PUBLISH %b %b";
    for (int i = 0; i < n; ++i) {
      const std::string data = make_data(now_ns(), opt_);
      redisAppendCommand(ctx_, format, key_.data(), key_.size(), data.data(), data.size());
    }
    for (int i = 0; i < n; ++i) {
      void* reply = nullptr;
      if (redisGetReply(ctx_, &reply) != REDIS_OK)
        throw std::runtime_error("redis: publish failed");
      freeReplyObject(reply);
    }
  }

 private:
  // A Redis Cluster: connect to the primary serving the channel's slot (a key-based command
  // on the same slot answers -MOVED slot host:port elsewhere).
  void follow_slot() {
    for (int hops = 0; hops < 3; ++hops) {
      auto* r = static_cast<redisReply*>(redisCommand(ctx_, "EXISTS %b", key_.data(), key_.size()));
      if (!r) throw std::runtime_error("redis: no answer");
      const std::string error = r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "";
      freeReplyObject(r);
      if (error.empty()) return;
      const auto space = error.rfind(' ');
      const auto colon = error.rfind(':');
      if (!error.starts_with("MOVED") || space == std::string::npos || colon < space)
        throw std::runtime_error("redis: " + error);
      const std::string host = error.substr(space + 1, colon - space - 1);
      const int port = std::stoi(error.substr(colon + 1));
      redisFree(ctx_);
      ctx_ = redisConnect(host.c_str(), port);
      if (!ctx_ || ctx_->err) throw std::runtime_error("redis: cannot connect to " + host);
    }
    throw std::runtime_error("redis: too many redirections");
  }

  const options& opt_;
  redisContext* ctx_ = nullptr;
  std::string key_;
};

class http_publisher {
 public:
  explicit http_publisher(const options& o) : opt_(o), socket_(ioc_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address(o.host), o.http_port));
    socket_.set_option(tcp::no_delay(true));
  }
  void burst(int n) {
    for (int i = 0; i < n; ++i)
      publish_one();
  }

 private:
  void publish_one() {
    const std::string body =
        R"({"channel":")" + opt_.channel + R"(","data":)" + make_data(now_ns(), opt_) + "}";
    const std::string req =
        "POST /v1/publish HTTP/1.1\r\nHost: bench\r\nContent-Type: "
        "application/json\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    asio::write(socket_, asio::buffer(req));
    // Read one response (headers + Content-Length body).
    for (;;) {
      const auto end = pending_.find("\r\n\r\n");
      if (end != std::string::npos) {
        std::size_t length = 0;
        std::string head = pending_.substr(0, end);
        for (char& c : head)
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        const auto cl = head.find("\r\ncontent-length:");
        if (cl != std::string::npos) length = std::stoul(head.substr(cl + 17));
        if (pending_.size() >= end + 4 + length) {
          if (pending_.compare(0, 10, "HTTP/1.1 2") != 0)
            throw std::runtime_error("http publish: " + pending_.substr(0, pending_.find('\r')));
          pending_.erase(0, end + 4 + length);
          return;
        }
      }
      char buf[4096];
      const auto got = socket_.read_some(asio::buffer(buf));
      pending_.append(buf, got);
    }
  }

  const options& opt_;
  asio::io_context ioc_;
  tcp::socket socket_;
  std::string pending_;
};

struct publisher {
  explicit publisher(const options& o) {
    if (o.publish_via == "redis")
      redis = std::make_unique<redis_publisher>(o);
    else
      http = std::make_unique<http_publisher>(o);
  }
  void burst(int n) { redis ? redis->burst(n) : http->burst(n); }
  std::unique_ptr<redis_publisher> redis;
  std::unique_ptr<http_publisher> http;
};

// ---- output ----

struct report {
  std::vector<std::pair<std::string, std::string>> fields;  // name, JSON value
  void add(const std::string& k, double v, int decimals = 1) {
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", decimals, v);
    fields.emplace_back(k, b);
  }
  void add(const std::string& k, const std::string& v) { fields.emplace_back(k, "\"" + v + "\""); }
  void print(bool json) const {
    if (json) {
      std::cout << "{";
      for (std::size_t i = 0; i < fields.size(); ++i)
        std::cout << (i ? "," : "") << "\"" << fields[i].first << "\":" << fields[i].second;
      std::cout << "}\n";
    } else {
      for (const auto& [k, v] : fields)
        std::printf("%-28s %s\n", k.c_str(), v.c_str());
    }
  }
};

void add_latency(report& r, latencies& lat) {
  r.add("latency_p50_ms", lat.pct(50), 3);
  r.add("latency_p90_ms", lat.pct(90), 3);
  r.add("latency_p99_ms", lat.pct(99), 3);
  r.add("latency_max_ms", lat.max(), 3);
}

// listen: one JSON line with what arrived since the last one (the latencies raw, so that the
// runs of several processes can be merged into exact percentiles), then starts counting anew.
void print_listen_report(const char* why, stats& st) {
  std::string out = R"({"report":")" + std::string(why) + R"(","connected":)" +
                    std::to_string(st.connected) + R"(,"failed":)" + std::to_string(st.failed) +
                    R"(,"open":)" + std::to_string(st.connected - st.lost + st.reconnects) +
                    R"(,"lost":)" + std::to_string(st.lost) + R"(,"reconnects":)" +
                    std::to_string(st.reconnects) + R"(,"deliveries":)" +
                    std::to_string(st.deliveries) + R"(,"latencies_us":[)";
  for (std::size_t i = 0; i < st.lat.us.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(st.lat.us[i]);
  }
  out += "]}\n";
  std::cout << out << std::flush;
  st.deliveries = 0;
  st.lat.us.clear();
}

int run(const options& o) {
  report r;
  bool incomplete = false;  // a fan-out or latency run that did not get every delivery
  r.add("scenario", o.scenario);
  r.add("server", o.label);
  if (o.scenario == "publish") {
    publisher p(o);
    p.burst(o.messages);
    r.add("publications", o.messages, 0);
    r.print(o.json);
    return 0;
  }
  r.add("connections", o.connections, 0);
  fleet f;
  const long rss_before = o.pid ? rss_kib(o.pid) : -1;
  const double cpu_before = o.pid ? cpu_seconds(o.pid) : -1;
  f.open(o);
  const double cpu_open = o.pid ? cpu_seconds(o.pid) - cpu_before : -1;
  r.add("connected", f.st.connected, 0);
  r.add("failed", f.st.failed, 0);
  if (o.deflate) r.add("compressed_connections", f.st.compressed, 0);
  if (o.scenario == "connect") {
    r.add("connect_seconds", f.connect_seconds, 3);
    r.add("connections_per_s", f.st.connected / f.connect_seconds, 0);
    // Server CPU while the connections opened (clock ticks: 10 ms each, so use many).
    if (o.pid) {
      r.add("server_cpu_us_per_connection", cpu_open * 1e6 / std::max(1, f.st.connected), 1);
      // And with the disconnects: every client drops its connection (as after a failover);
      // the server's CPU until it has handled them all (1.5 s is ample for 10,000 here).
      f.close_all();
      std::this_thread::sleep_for(std::chrono::milliseconds(1200));
      r.add("server_cpu_us_per_connect_and_close",
            (cpu_seconds(o.pid) - cpu_before) * 1e6 / std::max(1, f.st.connected), 1);
    }
    if (o.tls_resume) {
      // Every client reconnects at once, offering the TLS session of its first connection (a
      // load balancer's blip, a network change): the abbreviated handshake's cost.
      if (!o.pid) f.close_all();
      const double cpu_again = o.pid ? cpu_seconds(o.pid) : -1;
      f.open(o);
      const double cpu_reopen = o.pid ? cpu_seconds(o.pid) - cpu_again : -1;
      r.add("reconnected", f.st.connected, 0);
      r.add("reconnect_failed", f.st.failed, 0);
      r.add("tls_resumed", f.resumed(), 0);
      r.add("reconnect_seconds", f.connect_seconds, 3);
      r.add("reconnections_per_s", f.st.connected / f.connect_seconds, 0);
      if (o.pid)
        r.add("server_cpu_us_per_resumed_connection",
              cpu_reopen * 1e6 / std::max(1, f.st.connected), 1);
    }
  } else if (o.scenario == "idle") {
    // Without --pid only the holding: bench/scale runs several of these and reads the server's
    // memory itself (one process cannot hold more descriptors than its limit).
    if (o.pid) {
      f.run_until([] { return false; }, o.hold);  // let the server settle (lazy frees, tick)
      const long rss_after = rss_kib(o.pid);
      r.add("rss_before_kib", static_cast<double>(rss_before), 0);
      r.add("rss_after_kib", static_cast<double>(rss_after), 0);
      r.add("bytes_per_connection",
            static_cast<double>(rss_after - rss_before) * 1024.0 / std::max(1, f.st.connected), 0);
    } else {
      std::cerr << "herald-bench: " << f.st.connected << " connected, " << f.st.failed
                << " failed; holding " << o.hold << " s\n";
      f.run_until([] { return false; }, o.hold);
    }
  } else if (o.scenario == "fanout" || o.scenario == "latency") {
    f.subscribe_all();
    r.add("subscribed", f.st.subscribed, 0);
    if (!o.before_publish.empty() && std::system(o.before_publish.c_str()) != 0)
      throw std::runtime_error("--before-publish command failed");
    const bool burst = o.scenario == "fanout";
    const int count = burst ? o.messages : static_cast<int>(o.rate * o.duration);
    const std::uint64_t expected = static_cast<std::uint64_t>(count) * f.st.subscribed;
    std::exception_ptr failure;
    std::int64_t first_send = 0;
    const double cpu_publish = o.pid ? cpu_seconds(o.pid) : -1;
    std::thread pub([&] {
      try {
        publisher p(o);
        first_send = now_ns();
        if (burst) return p.burst(count);
        // Paced: batches every millisecond or so to hold the rate.
        const auto t0 = clock_type::now();
        int sent = 0;
        while (sent < count) {
          const double elapsed = std::chrono::duration<double>(clock_type::now() - t0).count();
          const int due = std::min(count, static_cast<int>(elapsed * o.rate) + 1);
          if (due > sent) {
            p.burst(due - sent);
            sent = due;
          } else {
            std::this_thread::sleep_for(std::chrono::microseconds(200));
          }
        }
      } catch (...) {
        failure = std::current_exception();
      }
    });
    const bool all = f.run_until([&] { return f.st.deliveries >= expected; },
                                 (burst ? 60.0 : o.duration + 30.0));
    const double cpu_fanout = o.pid ? cpu_seconds(o.pid) - cpu_publish : -1;
    pub.join();
    if (failure) std::rethrow_exception(failure);
    if (!o.after_deliveries.empty() && std::system(o.after_deliveries.c_str()) != 0)
      throw std::runtime_error("--after-deliveries command failed");
    const double seconds =
        f.st.deliveries ? static_cast<double>(f.st.last_delivery_ns - first_send) / 1e9 : 0.0;
    if (!all) incomplete = true;
    r.add("publish_via", o.publish_via);
    r.add("publications", count, 0);
    r.add("deliveries", static_cast<double>(f.st.deliveries), 0);
    r.add("deliveries_expected", static_cast<double>(expected), 0);
    r.add("complete", all ? "yes" : "no");
    r.add("seconds", seconds, 3);
    r.add("deliveries_per_s", seconds > 0 ? static_cast<double>(f.st.deliveries) / seconds : 0.0,
          0);
    r.add("bytes_received", static_cast<double>(f.st.bytes_in), 0);
    if (o.pid && f.st.deliveries > 0)
      r.add("server_cpu_us_per_delivery", cpu_fanout * 1e6 / static_cast<double>(f.st.deliveries),
            2);
    if (o.deflate) {
      r.add("messages_compressed", static_cast<double>(f.st.compressed_seen), 0);
      r.add("messages_inflated", static_cast<double>(f.st.inflated), 0);
    }
    add_latency(r, f.st.lat);
  } else if (o.scenario == "listen") {
    bool stop = false;
    asio::signal_set signals(f.ioc, SIGUSR1, SIGTERM, SIGINT);  // before the ready file
    f.subscribe_all();
    std::cerr << "herald-bench: " << f.st.connected << " connected, " << f.st.failed << " failed, "
              << f.st.subscribed << " subscribed\n";
    if (!o.ready_file.empty()) {
      std::ofstream(o.ready_file) << f.st.connected << " " << f.st.subscribed << "\n";
    }
    std::function<void()> wait = [&] {
      signals.async_wait([&](error_code ec, int signal) {
        if (ec) return;
        if (signal == SIGUSR1) {
          print_listen_report("interval", f.st);
          wait();
        } else {
          stop = true;
        }
      });
    };
    wait();
    f.run_until([&] { return stop; }, o.hold);
    signals.cancel();
    print_listen_report("end", f.st);
    for (auto& c : f.clients)
      c->close();
    f.run_until([] { return false; }, 0.2);
    return f.st.failed == 0 ? 0 : 1;
  } else if (o.scenario == "echo") {
    for (auto& c : f.clients)
      c->ping_pong();
    const auto t0 = clock_type::now();
    f.run_until([] { return false; }, o.duration);
    const double seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    r.add("round_trips", static_cast<double>(f.st.echoes), 0);
    r.add("round_trips_per_s", static_cast<double>(f.st.echoes) / seconds, 0);
    add_latency(r, f.st.lat);
  } else {
    usage("unknown scenario " + o.scenario);
  }
  for (auto& c : f.clients)
    c->close();
  r.print(o.json);
  return f.st.failed == 0 && !incomplete ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "herald-bench: " << e.what() << "\n";
    return 1;
  }
}
