// Commands to a Redis Cluster: the topology read with CLUSTER SHARDS, one redis_connection per
// primary, and each command sent to the primary serving its key's slot. A -MOVED answer
// refreshes the map and sends the command again where it points; -ASK sends it once to the
// importing node behind ASKING (the map stays); -TRYAGAIN waits a moment and tries again; at
// most `max_redirects` hops. Runs on one io_context thread; callbacks run there too.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "redis/cluster_map.hpp"
#include "redis/redis_connection.hpp"

namespace herald::redis {

class cluster_client : public std::enable_shared_from_this<cluster_client> {
 public:
  struct options {
    std::vector<redis::endpoint> seeds;  // asked for the topology, in turn
    redis_connection::options node;      // timeouts, TLS, credentials (the endpoint is replaced)
    int max_redirects = 5;
    duration retry_delay = std::chrono::milliseconds(50);  // TRYAGAIN, and topology retries
  };
  struct callbacks {
    std::function<void()> on_ready;  // every slot has a primary we are connected to
    std::function<void(const std::string& why)> on_lost;  // was ready, is not any more
    std::function<void(const cluster_map&)> on_topology;  // a map was read (first or again)
  };

  cluster_client(asio::io_context& ioc, options opts, callbacks cb);
  ~cluster_client();
  cluster_client(const cluster_client&) = delete;
  cluster_client& operator=(const cluster_client&) = delete;

  void start();
  void stop();  // pending commands get a null reply
  // Reads the topology again (coalesced with one already under way).
  void refresh();

  bool ready() const { return ready_; }
  const cluster_map& map() const { return map_; }
  // Topology reads so far (the first one, then one per MOVED burst or lost primary).
  std::uint64_t refreshes() const { return refreshes_; }
  std::uint64_t redirects() const { return redirects_; }

  // Sends `args` to the primary serving `key`'s slot, following redirections. `done` gets the
  // final reply (an error reply when Redis gave one), or null when no node could be reached.
  void command(std::string key, std::vector<std::string> args,
               std::function<void(reply_view)> done);
  // Sends `args` to every primary (FUNCTION LOAD, which Redis does not spread across shards).
  // `done(ok, failed)` once all have answered; an error reply counts as failed.
  void on_each_primary(std::vector<std::string> args,
                       std::function<void(std::size_t ok, std::size_t failed)> done);

 private:
  struct request {
    std::string key;
    std::vector<std::string> args;
    std::function<void(reply_view)> done;
    int hops = 0;
    std::string ask_host;  // set by -ASK: the next try goes there, behind ASKING
    int ask_port = 0;
    steady_clock::time_point deadline{};  // set when it first waits: fails after that
  };

  void read_topology(std::size_t seed_index);
  void apply(cluster_map map);
  void update_ready();
  std::shared_ptr<redis_connection> node(const std::string& host, int port);
  void send(std::shared_ptr<request> r, std::shared_ptr<redis_connection> to, bool asking);
  void route(std::shared_ptr<request> r);
  void retry_later(std::shared_ptr<request> r);
  // Holds a request until a map or its node is ready, for node.command_timeout at most.
  void wait(std::shared_ptr<request> r);
  void sweep();

  asio::io_context& ioc_;
  options opts_;
  callbacks cb_;
  cluster_map map_;
  bool have_map_ = false;
  std::map<std::string, std::shared_ptr<redis_connection>> nodes_;  // by "host:port"
  std::shared_ptr<redis_connection> seed_;               // the connection the topology is read on
  std::vector<std::pair<std::string, int>> candidates_;  // asked for the topology, in turn
  std::vector<std::shared_ptr<request>> waiting_;        // for a map, or a ready primary
  asio::steady_timer refresh_timer_;
  asio::steady_timer sweep_timer_;
  bool sweeping_ = false;
  bool refreshing_ = false;
  bool refresh_again_ = false;
  bool ready_ = false;
  bool stopped_ = true;
  std::uint64_t refreshes_ = 0;
  std::uint64_t redirects_ = 0;
};

}  // namespace herald::redis
