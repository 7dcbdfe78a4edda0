// One Redis connection on a socket Herald owns: plain TCP, TLS (asio::ssl::stream) or a Unix
// socket, driven by Boost.Asio on one io_context. hiredis does only what it is best at: the
// RESP reader (redisReaderFeed / redisReaderGetReply); commands are formatted here
// (append_command); it never sees the socket.
//
// - One owner of the socket: this object. Reads go into one buffer and through the reader;
//   writes are batched: commands queued while a write is in flight leave together in the next.
// - Connect and command timeouts are ours: a steady_timer for the connect (resolve, TCP, TLS
//   handshake, AUTH/SELECT or PING), and the deadline of the oldest unanswered command (replies
//   come in order). Either expiring drops the connection, which fails every pending command.
// - Replies come in order and are matched to commands in order; on a subscriber connection,
//   pub/sub pushes (message, subscribe, ...) go to on_push instead.
// - The pipeline is bounded (options::max_pending unanswered commands): a command over it is
//   refused (command() returns false) and counted (refused()).
// - TLS: verification is on unless options::tls_verify is false; the server name (SNI and the
//   certificate check) is options::tls_server_name or the endpoint's host. A failed handshake
//   is a lost connection with the reason, never a fallback to plain text.
// - Sentinel (options::sentinels): every start() asks the Sentinels, in turn, for the primary
//   of options::master_name (SENTINEL get-master-addr-by-name), connects there, and checks with
//   ROLE that it is the primary before it is ready; a connection is never reused blindly after
//   a failover. A READONLY error (the server was demoted under us) drops the connection, so the
//   next start() asks again.
// - Callbacks never run inside another callback's stack of ours that could free us: losses are
//   reported on a fresh turn of the loop.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>

#include "herald/config/config.hpp"
#include "herald/redis/redis_endpoint.hpp"

struct redisReader;
struct redisReply;

namespace herald::redis {

namespace asio = boost::asio;
using steady_clock = std::chrono::steady_clock;
using duration = std::chrono::milliseconds;

// The TLS client context of redis.tls (CA, client certificate and key), shared by every
// connection. Throws config_error naming the key whose file cannot be used.
std::shared_ptr<asio::ssl::context> make_client_tls(const redis_tls_config& cfg);

// A reply as hiredis parsed it; valid only during the callback.
using reply_view = const redisReply*;

// Appends one command in RESP (an array of bulk strings) to `out`.
void append_command(std::string& out, const std::vector<std::string>& args);

// One connection to Redis driven by Asio, with our own timeouts and a bounded pipeline.
class redis_connection : public std::enable_shared_from_this<redis_connection> {
 public:
  struct options {
    redis::endpoint endpoint;
    duration connect_timeout = std::chrono::seconds(2);
    duration command_timeout = std::chrono::seconds(2);
    std::size_t max_pending = 100000;  // unanswered commands at most (redis.max_pending_commands)
    // TLS (rediss:// or redis.tls.enabled): a client context shared by every connection.
    std::shared_ptr<asio::ssl::context> tls;
    std::string tls_server_name;  // empty: the endpoint's host
    bool tls_verify = true;
    // Sentinel: where the Sentinels are (their own credentials, and TLS when `tls` is set) and
    // the primary's name. The endpoint's host and port are then replaced by what they answer.
    std::vector<redis::endpoint> sentinels;
    std::string master_name;
    duration sentinel_timeout = std::chrono::milliseconds(500);  // per Sentinel asked
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
  // Where it connects (or did): the endpoint, or the primary a Sentinel named.
  const redis::endpoint& target() const { return target_; }
  std::size_t pending() const { return pending_.size(); }
  // Commands refused because max_pending were unanswered (since construction).
  std::uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

  // Sends a command (binary-safe arguments). `done` gets the reply, or null if the connection
  // was lost first. Returns false (and never calls `done`) when not ready or the pipeline is
  // full.
  bool command(const std::vector<std::string>& args, std::function<void(reply_view)> done);
  // SUBSCRIBE / UNSUBSCRIBE (SSUBSCRIBE / SUNSUBSCRIBE when `sharded`: Redis Cluster's shard
  // channels, all of one call in one slot): confirmations and messages arrive through on_push.
  bool subscribe(const std::vector<std::string>& channels, bool sharded = false);
  bool unsubscribe(const std::vector<std::string>& channels, bool sharded = false);

 private:
  enum class state { idle, connecting, handshake, ready, closed };
  using tcp = asio::ip::tcp;
  using unix_socket = asio::local::stream_protocol::socket;
  using tls_stream = asio::ssl::stream<tcp::socket>;

  struct pending_command {
    std::function<void(reply_view)> done;
    steady_clock::time_point deadline;
  };
  // One connection's socket (and resolver). Every operation in flight holds a reference, so a
  // closed socket is destroyed only once its cancelled operations have completed (an
  // asio::ssl::stream must outlive its operations); each start() makes a new one.
  struct transport {
    explicit transport(asio::io_context& ioc) : resolver(ioc) {}
    tcp::resolver resolver;
    std::optional<tcp::socket> plain;
    std::optional<tls_stream> secure;
    std::optional<unix_socket> local_socket;
  };

  void connect();
  void ask_sentinel(std::size_t tried, std::string errors);
  void connect_tcp(const tcp::resolver::results_type& addresses);
  void tls_handshake();
  void handshake();
  // Queues a formatted command; `expects_reply`: an entry in pending_ (else a push follows).
  bool send(const std::vector<std::string>& args, std::function<void(reply_view)> done,
            bool expects_reply);
  void flush();
  void read();
  void on_data(std::size_t n);
  void dispatch(redisReply* reply);
  void arm_command_timer();
  // Reports the loss once (on a fresh turn of the loop) and fails what is pending.
  void lose(std::string why);
  void close_socket();
  void fail_pending();
  bool open() const { return io_ && (io_->plain || io_->secure || io_->local_socket); }

  template <class F>
  void with_stream(F&& f) {
    if (io_->secure)
      f(*io_->secure);
    else if (io_->plain)
      f(*io_->plain);
    else if (io_->local_socket)
      f(*io_->local_socket);
  }

  asio::io_context& ioc_;
  options opts_;
  callbacks cb_;
  redis::endpoint target_;                      // what connect() dials
  std::shared_ptr<redis_connection> sentinel_;  // the Sentinel being asked, while resolving
  std::size_t preferred_sentinel_ = 0;          // the one that answered last: asked first
  std::shared_ptr<transport> io_;               // null while not connected
  redisReader* reader_ = nullptr;
  asio::steady_timer connect_timer_;
  asio::steady_timer command_timer_;
  std::deque<pending_command> pending_;  // unanswered commands, oldest first
  std::string out_;                      // formatted commands waiting for the next write
  std::string writing_buf_;              // what the write in flight sends
  std::vector<char> in_;                 // read buffer
  state state_ = state::idle;
  bool writing_ = false;
  bool timer_armed_ = false;
  bool subscribed_ = false;  // a SUBSCRIBE was sent: pub/sub replies are pushes from now on
  bool sharded_ = false;     // SSUBSCRIBE used: refused ones arrive as error pushes
  bool lost_ = false;        // on_lost already reported for this start()
  unsigned generation_ = 0;  // bumps on every start(): stale handlers recognise themselves
  std::atomic<std::uint64_t> refused_{0};  // read by the metrics page
};

}  // namespace herald::redis
