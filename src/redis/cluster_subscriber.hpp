// Sharded pub/sub on a Redis Cluster (Redis 7.0): each channel subscribed with SSUBSCRIBE on the
// primary serving its slot, one connection per primary. Messages then stay inside their shard
// instead of crossing the whole cluster bus (classic PUBLISH is broadcast to every node).
//
// When a slot moves (resharding) or its primary changes (failover), Redis drops the
// subscription with an unrequested `sunsubscribe` (or the connection closes): there is no
// MOVED. The channel is reported interrupted, the topology is read again (`need_topology`),
// and place() subscribes it where its slot is now; `on_subscribed` says it receives again.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "redis/cluster_map.hpp"
#include "redis/redis_connection.hpp"

namespace herald::redis {

class cluster_subscriber : public std::enable_shared_from_this<cluster_subscriber> {
 public:
  struct callbacks {
    std::function<void(std::string_view channel, std::string_view payload)> on_message;
    std::function<void(const std::string& channel)> on_subscribed;   // receiving (again)
    std::function<void(const std::string& channel)> on_interrupted;  // not receiving for now
    std::function<void()> need_topology;  // a subscription was dropped: read the map again
  };

  cluster_subscriber(asio::io_context& ioc, redis_connection::options node, callbacks cb);
  ~cluster_subscriber();
  cluster_subscriber(const cluster_subscriber&) = delete;
  cluster_subscriber& operator=(const cluster_subscriber&) = delete;

  // The topology (cluster_client's on_topology): every channel goes where its slot is.
  void place(const cluster_map& map);
  void subscribe(const std::string& channel);
  void unsubscribe(const std::string& channel);
  bool receiving(const std::string& channel) const;
  // Drops every connection and subscribes everything again on new ones (a subscriber that
  // stopped delivering): each channel is reported interrupted, then subscribed.
  void restart();
  void stop();

 private:
  struct channel_state {
    std::string home;  // "host:port" of the primary it is (to be) subscribed on
    bool pending = false;
    bool receiving = false;
  };
  struct node_state {
    std::shared_ptr<redis_connection> conn;
    std::multiset<std::string> leaving;  // SUNSUBSCRIBEs we sent, not yet confirmed
  };

  void home(const std::string& channel, channel_state& st);
  node_state& node(const std::string& host, int port);
  void send_subscribe(const std::string& channel, channel_state& st);
  void on_push(const std::string& address, reply_view r);
  void interrupted(const std::string& channel, channel_state& st);

  asio::io_context& ioc_;
  redis_connection::options opts_;
  callbacks cb_;
  cluster_map map_;
  bool have_map_ = false;
  bool stopped_ = false;
  std::map<std::string, channel_state> channels_;  // the channels we want
  std::map<std::string, node_state> nodes_;        // by "host:port"
};

}  // namespace herald::redis
