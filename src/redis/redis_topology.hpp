// Where the backplane's commands and subscriptions go, whatever Redis is: one server (plain or
// TLS), the primary Redis Sentinel names, or a Redis Cluster with sharded pub/sub. The
// backplane's roles (pub/sub, directory, store) talk to this interface only, and never ask
// which topology is behind it. Runs on the backplane's io_context thread; so do the events.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "herald/common/log.hpp"
#include "herald/config/config.hpp"
#include "redis/redis_connection.hpp"

namespace herald::redis {

class redis_topology {
 public:
  struct events {
    std::function<void()> commands_up;  // commands can be sent (again)
    std::function<void(const std::string& why)> commands_down;
    // Subscriptions can be made (again). After subscriber_down every subscription is gone and
    // is made again by the backplane; a topology that loses them one by one reports
    // interrupted() instead.
    std::function<void()> subscriber_up;
    std::function<void(const std::string& why)> subscriber_down;
    std::function<void(const std::string& channel)> subscribed;    // confirmed, receiving
    std::function<void(const std::string& channel)> unsubscribed;  // a leave we asked for is done
    std::function<void(const std::string& channel)> interrupted;   // not receiving for now
    std::function<void(std::string_view channel, std::string_view payload)> message;
    // A primary appeared (first connect, failover, node added): it needs the function library.
    std::function<void()> new_primary;
  };
  struct counters {
    std::atomic<std::uint64_t> disconnects{0}, reconnects{0}, failovers{0}, refreshes{0},
        redirects{0};
  };

  virtual ~redis_topology() = default;

  virtual void start() = 0;
  virtual void stop() = 0;
  // For logs: the URL, the Sentinels and master name, or the cluster's seeds.
  virtual std::string describe() const = 0;

  // ---- commands ----
  virtual bool commands_ready() const = 0;
  // Sends `args`, on a cluster to the primary serving `key`'s slot. False when it cannot be
  // sent now (`done` is then not called); `done` gets null when no answer came.
  virtual bool command(const std::string& key, std::vector<std::string> args,
                       std::function<void(reply_view)> done) = 0;
  // PUBLISH (SPUBLISH on a cluster: the channel's shard); `done` gets the receiver count.
  bool publish(const std::string& channel, std::string payload,
               std::function<void(reply_view)> done);
  // The receivers of a channel now (PUBSUB NUMSUB, or SHARDNUMSUB on the channel's shard); -1
  // when Redis did not answer.
  void listeners(const std::string& channel, std::function<void(long long)> done);
  // Several string keys in order, "" for the missing; nothing when Redis did not answer.
  virtual void get(std::vector<std::string> keys,
                   std::function<void(std::optional<std::vector<std::string>>)> done) = 0;
  // `args` on every primary (FUNCTION LOAD): `done(failed)` once all answered.
  virtual void on_every_primary(std::vector<std::string> args,
                                std::function<void(std::size_t failed)> done) = 0;

  // ---- subscriptions ----
  virtual void subscribe(const std::vector<std::string>& channels) = 0;
  virtual void unsubscribe(const std::vector<std::string>& channels) = 0;
  // Subscribed but not delivering (the probe did not come back): every subscription is made
  // again on new connections.
  virtual void restart_subscriptions(const std::string& why) = 0;

  // ---- metrics ----
  const counters& stats() const { return stats_; }
  // Commands refused because a connection had redis.max_pending_commands unanswered, by role.
  virtual std::vector<std::pair<std::string, std::uint64_t>> refused() const = 0;

 protected:
  explicit redis_topology(bool sharded) : sharded_(sharded) {}
  const bool sharded_;  // pub/sub on sharded channels (SPUBLISH, SSUBSCRIBE)
  counters stats_;
};

// The topology redis.* configures: a cluster with redis.cluster.addresses, else one server (or
// the primary the Sentinels name).
std::unique_ptr<redis_topology> make_topology(const config& cfg, asio::io_context& ioc, logger& log,
                                              redis_topology::events ev);

// The two implementations. `o`: the connections' options (timeouts, TLS, credentials; the
// endpoint for one server, the Sentinels).
std::unique_ptr<redis_topology> make_single_topology(const redis_config& rc, asio::io_context& ioc,
                                                     logger& log, redis_topology::events ev,
                                                     redis_connection::options o);
std::unique_ptr<redis_topology> make_cluster_topology(const redis_config& rc, asio::io_context& ioc,
                                                      logger& log, redis_topology::events ev,
                                                      redis_connection::options o);

}  // namespace herald::redis
