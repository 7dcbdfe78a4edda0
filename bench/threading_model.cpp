// herald-threading-bench: the two threading models DESIGN.md weighs, measured on the same
// fan-out with the same write path, so the choice rests on numbers rather than on taste.
//
//   shard   one io_context and thread per worker ("shard per core", what Herald does): each
//           session belongs to one worker; a publication is posted once per worker, which
//           queues it to its sessions and writes each session's queue in one gathered sendmsg.
//   strand  one io_context run by the same number of threads, a strand per session (the
//           classic Asio server): a publication is posted to every session's strand, which
//           queues it and writes the same way.
//
// N loopback TCP connections (several source addresses); the receiving ends are read by one
// epoll thread, as a load tool would. Each message is 100 bytes with its send time in the
// first 8, so latency counts every recipient. Two scenarios per model:
//   burst    `--messages` publications at once: deliveries/s, first publish to last receipt
//   latency  one publication at a time, `--rounds` times: p50/p99 over every recipient
//
//   herald-threading-bench [--connections 9000] [--threads 2] [--messages 300] [--rounds 10]
//                          [--model shard|strand|both] [--json]
// A process holds both ends of every connection: 2 × N descriptors (ulimit -n).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr std::size_t message_size = 100;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
      .count();
}

struct options {
  int connections = 9000;
  int threads = 2;
  int messages = 300;
  int rounds = 10;
  std::string model = "both";
  bool json = false;
};

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--connections")
      o.connections = std::stoi(value());
    else if (a == "--threads")
      o.threads = std::stoi(value());
    else if (a == "--messages")
      o.messages = std::stoi(value());
    else if (a == "--rounds")
      o.rounds = std::stoi(value());
    else if (a == "--model")
      o.model = value();
    else if (a == "--json")
      o.json = true;
    else
      throw std::runtime_error("unknown option " + a);
  }
  if (o.connections < 1 || o.threads < 1 || o.messages < 1 || o.rounds < 1)
    throw std::runtime_error("counts must be positive");
  if (o.model != "shard" && o.model != "strand" && o.model != "both")
    throw std::runtime_error("--model: shard, strand or both");
  return o;
}

// A server-side connection: a queue of shared payloads, written in one gathered sendmsg.
// Touched only by the thread (shard) or strand that owns it.
struct session {
  int fd = -1;
  std::vector<std::shared_ptr<const std::string>> queue;
  bool flush_pending = false;

  void flush() {
    flush_pending = false;
    std::size_t done = 0;  // whole messages written
    std::size_t skip = 0;  // bytes of the next one written
    while (done < queue.size()) {
      iovec iov[256];
      std::size_t n = 0;
      for (std::size_t i = done; i < queue.size() && n < 256; ++i, ++n) {
        const std::size_t off = i == done ? skip : 0;
        iov[n] = {const_cast<char*>(queue[i]->data()) + off, queue[i]->size() - off};
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = n;
      const ssize_t sent = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
      if (sent < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
          std::this_thread::yield();  // the reader drains; both models see the same case
          continue;
        }
        throw std::runtime_error(std::string("sendmsg: ") + std::strerror(errno));
      }
      auto left = static_cast<std::size_t>(sent) + skip;
      while (done < queue.size() && left >= queue[done]->size())
        left -= queue[done++]->size();
      skip = left;
    }
    queue.clear();
  }
};

// The connections and the reader. The reader counts messages and records each one's latency.
struct testbed {
  std::vector<int> client_fds;
  std::vector<session> sessions;
  int epoll_fd = -1;

  explicit testbed(int n) : sessions(static_cast<std::size_t>(n)) {
    const int ls = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f000001);
    socklen_t len = sizeof a;
    if (::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(ls, 4096) != 0 ||
        ::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("listen");
    epoll_fd = ::epoll_create1(0);
    for (int i = 0; i < n; ++i) {
      const int c = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in src{};
      src.sin_family = AF_INET;
      src.sin_addr.s_addr = htonl(0x7f000001u + static_cast<unsigned>(i % 8));
      if (c < 0 || ::bind(c, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
          ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        throw std::runtime_error(std::string("connect: ") + std::strerror(errno) +
                                 " (ulimit -n must allow 2 x --connections)");
      const int s = ::accept(ls, nullptr, nullptr);
      if (s < 0) throw std::runtime_error("accept");
      const int one = 1;
      ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::fcntl(s, F_SETFL, O_NONBLOCK);
      ::fcntl(c, F_SETFL, O_NONBLOCK);
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLET;
      ev.data.u32 = static_cast<std::uint32_t>(i);
      ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c, &ev);
      client_fds.push_back(c);
      sessions[static_cast<std::size_t>(i)].fd = s;
    }
    ::close(ls);
  }

  ~testbed() {
    for (int fd : client_fds)
      ::close(fd);
    for (auto& s : sessions)
      ::close(s.fd);
    ::close(epoll_fd);
  }

  // Reads until `expected` messages arrived (or 30 s): latencies in µs, and the last receipt.
  std::int64_t read(std::uint64_t expected, std::vector<std::uint32_t>& lat_us) {
    std::vector<std::string> partial(client_fds.size());
    std::uint64_t got = 0;
    std::int64_t last = 0;
    epoll_event events[256];
    static thread_local char buf[256 * 1024];
    const auto deadline = clock_type::now() + std::chrono::seconds(30);
    while (got < expected && clock_type::now() < deadline) {
      const int n = ::epoll_wait(epoll_fd, events, 256, 100);
      for (int k = 0; k < n; ++k) {
        const auto i = events[k].data.u32;
        for (;;) {
          const ssize_t r = ::read(client_fds[i], buf, sizeof buf);
          if (r <= 0) break;
          const std::int64_t t = now_ns();
          last = t;
          std::string& p = partial[i];
          p.append(buf, static_cast<std::size_t>(r));
          std::size_t at = 0;
          for (; at + message_size <= p.size(); at += message_size) {
            std::int64_t sent = 0;
            std::memcpy(&sent, p.data() + at, sizeof sent);
            lat_us.push_back(
                static_cast<std::uint32_t>(std::max<std::int64_t>(0, t - sent) / 1000));
            ++got;
          }
          p.erase(0, at);
          if (static_cast<std::size_t>(r) < sizeof buf) break;
        }
      }
    }
    if (got < expected) throw std::runtime_error("reader: deliveries missing after 30 s");
    return last;
  }
};

std::shared_ptr<const std::string> make_message() {
  auto m = std::make_shared<std::string>(message_size, 'x');
  const std::int64_t t = now_ns();
  std::memcpy(m->data(), &t, sizeof t);
  return m;
}

// Publishes through one model. `publish` queues one publication (any thread).
class model {
 public:
  virtual ~model() = default;
  virtual void publish(std::shared_ptr<const std::string> m) = 0;
};

class shard_model final : public model {
 public:
  shard_model(testbed& tb, int threads) {
    for (int w = 0; w < threads; ++w)
      shards_.push_back(std::make_unique<shard>());
    for (std::size_t i = 0; i < tb.sessions.size(); ++i)
      shards_[i % shards_.size()]->sessions.push_back(&tb.sessions[i]);
    for (auto& s : shards_)
      s->thread = std::thread([&ioc = s->ioc] { ioc.run(); });
  }
  ~shard_model() override {
    for (auto& s : shards_) {
      s->guard.reset();
      s->thread.join();
    }
  }
  void publish(std::shared_ptr<const std::string> m) override {
    for (auto& s : shards_) {
      asio::post(s->ioc, [sh = s.get(), m] {
        for (session* x : sh->sessions) {
          x->queue.push_back(m);
          if (!x->flush_pending) {
            x->flush_pending = true;
            sh->dirty.push_back(x);
          }
        }
        if (!sh->flush_posted) {
          sh->flush_posted = true;
          asio::post(sh->ioc, [sh] {
            sh->flush_posted = false;
            std::vector<session*> batch;
            batch.swap(sh->dirty);
            for (session* x : batch)
              x->flush();
          });
        }
      });
    }
  }

 private:
  struct shard {
    asio::io_context ioc{1};
    asio::executor_work_guard<asio::io_context::executor_type> guard{ioc.get_executor()};
    std::vector<session*> sessions;
    std::vector<session*> dirty;
    bool flush_posted = false;
    std::thread thread;
  };
  std::vector<std::unique_ptr<shard>> shards_;
};

class strand_model final : public model {
 public:
  strand_model(testbed& tb, int threads) : guard_(ioc_.get_executor()) {
    for (auto& s : tb.sessions)
      strands_.push_back({&s, asio::make_strand(ioc_)});
    for (int t = 0; t < threads; ++t)
      threads_.emplace_back([this] { ioc_.run(); });
  }
  ~strand_model() override {
    guard_.reset();
    for (auto& t : threads_)
      t.join();
  }
  void publish(std::shared_ptr<const std::string> m) override {
    for (auto& e : strands_) {
      asio::post(e.strand, [&e, m] {
        e.s->queue.push_back(m);
        if (e.s->flush_pending) return;
        e.s->flush_pending = true;
        // Flushed after what is already queued on this strand, like the shard's end of turn.
        asio::post(e.strand, [&e] { e.s->flush(); });
      });
    }
  }

 private:
  struct entry {
    session* s;
    asio::strand<asio::io_context::executor_type> strand;
  };
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::vector<entry> strands_;
  std::vector<std::thread> threads_;
};

double pct(std::vector<std::uint32_t>& v, double p) {
  if (v.empty()) return 0;
  const std::size_t k = std::min(v.size() - 1, static_cast<std::size_t>(p / 100.0 * v.size()));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k] / 1000.0;
}

void run_model(const std::string& name, testbed& tb, const options& o) {
  std::unique_ptr<model> m;
  if (name == "shard")
    m = std::make_unique<shard_model>(tb, o.threads);
  else
    m = std::make_unique<strand_model>(tb, o.threads);
  const auto n = static_cast<std::uint64_t>(tb.sessions.size());

  // burst
  std::vector<std::uint32_t> lat;
  lat.reserve(n * static_cast<std::uint64_t>(o.messages));
  const std::int64_t t0 = now_ns();
  std::thread pub([&] {
    for (int i = 0; i < o.messages; ++i)
      m->publish(make_message());
  });
  const std::int64_t last = tb.read(n * static_cast<std::uint64_t>(o.messages), lat);
  pub.join();
  const double burst_s = static_cast<double>(last - t0) / 1e9;
  const double rate = static_cast<double>(n) * o.messages / burst_s;

  // latency: one publication at a time
  std::vector<std::uint32_t> one;
  one.reserve(n * static_cast<std::uint64_t>(o.rounds));
  for (int r = 0; r < o.rounds; ++r) {
    m->publish(make_message());
    tb.read(n, one);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double p50 = pct(one, 50), p99 = pct(one, 99);
  if (o.json) {
    std::printf(
        "{\"model\":\"%s\",\"connections\":%zu,\"threads\":%d,\"messages\":%d,"
        "\"burst_deliveries_per_s\":%.0f,\"burst_seconds\":%.3f,\"latency_p50_ms\":%.2f,"
        "\"latency_p99_ms\":%.2f}\n",
        name.c_str(), tb.sessions.size(), o.threads, o.messages, rate, burst_s, p50, p99);
  } else {
    std::printf(
        "%-7s burst %zu x %d: %10.0f deliveries/s (%.3f s)   one at a time: p50 %6.2f ms"
        "  p99 %6.2f ms\n",
        name.c_str(), tb.sessions.size(), o.messages, rate, burst_s, p50, p99);
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const options o = parse(argc, argv);
    testbed tb(o.connections);
    if (o.model == "both") {
      // Interleaved, so drift on a shared machine hits both alike.
      for (const char* name : {"shard", "strand", "shard", "strand"})
        run_model(name, tb, o);
    } else {
      run_model(o.model, tb, o);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "herald-threading-bench: %s\n", e.what());
    return 1;
  }
}
