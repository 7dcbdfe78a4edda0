// The Redis backplane's class, shared by the files that implement it by role:
//   redis_backplane.cpp  construction, Redis's comings and goings, status, metrics, liveness
//   redis_pubsub.cpp     forwarding publications, interest, subscriptions, what arrives
//   redis_directory.cpp  the connection directory and node-to-node requests
//   redis_store.cpp      history (store, read), inbox acks, presence, streams
// and, socket-free, history_sequencer (history channels in offset order, gaps read back).
// They reach Redis only through redis_topology (one server or Sentinel's primary:
// single_topology.cpp; a Redis Cluster: cluster_topology.cpp), never asking which it is.
// Everything runs on the backplane's own thread and io_context unless a comment says so.
#pragma once

#include "redis/redis_backplane.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "herald/common/json_input.hpp"
#include "herald/routing/event.hpp"
#include "herald/ws/handshake.hpp"
#include "herald/ws/utf8.hpp"
#include "redis/history_sequencer.hpp"
#include "redis/redis_connection.hpp"
#include "redis/redis_functions.hpp"
#include "redis/redis_names.hpp"
#include "redis/redis_topology.hpp"

namespace herald::redis {

using nlohmann::json;
using ms = std::chrono::milliseconds;

inline std::string reply_text(reply_view r) {
  return r && r->str ? std::string(r->str, r->len) : std::string();
}

// The backplane on Redis: pub/sub fan-out, the directory, history, presence, streams.
class redis_backplane final : public backplane {
 public:
  redis_backplane(const config& cfg, logger& log, connection_registry& registry, delivery deliver,
                  worker_poster post);
  ~redis_backplane() override;
  void start() override;
  void stop(std::function<void()> done) override;

  // ---- publications ----

  void forward(const publication& p, std::function<void(bool)> done) override;

  // ---- interest ----

  void channel_added(const std::string& channel, unsigned worker,
                     std::function<void()> ready) override;
  void channel_removed(const std::string& channel) override;
  void user_added(const std::string& user) override;
  void user_removed(const std::string& user) override;

  // ---- directory ----

  void connection_opened(const connection& c) override;
  void connection_closed(const connection& c) override;
  void locate(const std::string& id,
              std::function<void(std::optional<remote_connection>)> done) override;
  void send_remote(const remote_connection& where, message_ptr payload, bool binary,
                   std::function<void(remote_result)> done) override;
  void close_remote(const remote_connection& where, std::uint16_t code,
                    std::string reason) override;
  void ask_other_nodes(std::string kind, std::string arg,
                       std::function<void(cluster_replies)> done) override;
  void set_node_question(node_question answer) override { question_ = std::move(answer); }
  void post_remote(const std::string& node, std::string token, std::string body, bool end,
                   post_reply done) override;
  void set_post_handler(post_handler handler) override { post_handler_ = std::move(handler); }

  // ---- durable delivery ----

  void publish_stored(const publication& p, const history_rule& rule,
                      std::function<void(stored_result)> done) override;
  void read_history(history_query q, const history_rule&, unsigned worker,
                    std::function<void(history_page)> done) override;
  void ack(const std::string& channel, std::uint64_t offset,
           std::function<void(std::optional<std::uint64_t>)> done) override;

  // ---- presence ----

  void presence_join(const std::string& channel, const connection& c) override;
  void presence_leave(const std::string& channel, const connection& c) override;
  void presence(const std::string& channel, std::size_t limit,
                std::function<void(presence_result)> done) override;

  // ---- store-first ----

  void append_stream(std::string key, std::vector<std::pair<std::string, std::string>> fields,
                     std::size_t max_length, std::function<void(bool, std::string)> done) override;

  // ---- health and metrics ----

  backplane_status status() const override;

  // ---- the cluster ----

  void set_node_summary(std::function<std::string()> summary) override;
  void nodes(std::function<void(std::vector<node_entry>)> done) override;
  void write_metrics(prometheus_text& out) const override;

 private:
  enum class sub_state { none, subscribing, subscribed, unsubscribing };
  struct pending_request {
    std::function<void(remote_result)> done;
    std::shared_ptr<asio::steady_timer> timer;
  };
  struct pending_post {
    post_reply done;
    std::shared_ptr<asio::steady_timer> timer;
  };
  struct pending_question {
    std::function<void(cluster_replies)> done;
    std::shared_ptr<asio::steady_timer> timer;
    std::unordered_set<std::string> waiting;  // nodes that have not answered yet
    cluster_replies replies;
  };

  // Time down in all: the finished outages, and the current one if the backplane is down now.
  double outage_seconds() const {
    double seconds = static_cast<double>(outage_ms_.load()) / 1000.0;
    if (const auto since = down_since_ms_.load(); since != 0)
      seconds += static_cast<double>(now_ms() - since) / 1000.0;
    return seconds;
  }

  std::string node_channel(const std::string& node) const { return names_.node(node); }
  std::string alive_key(const std::string& node) const { return names_.alive(node); }
  std::string nodes_key() const { return names_.nodes(); }

  // ---- commands, whatever the topology (see redis_topology) ----
  bool run(const std::string& key, std::vector<std::string> args,
           std::function<void(reply_view)> done) {
    return topology_->command(key, std::move(args), std::move(done));
  }
  bool commands_ready() const { return topology_->commands_ready(); }
  bool publish_to(const std::string& channel, std::string payload,
                  std::function<void(reply_view)> done) {
    return topology_->publish(channel, std::move(payload), std::move(done));
  }
  // FCALL of one of Herald's functions for `channel` (its one key on a Redis Cluster).
  std::vector<std::string> fcall(const std::string& function, const std::string& channel) const;
  redis_topology::events topology_events();
  // The nodes listed at most (GET /v1/nodes, and who is asked a cluster-wide question).
  static constexpr std::size_t kMaxNodes = 1000;
  // ZRANGEBYSCORE of the nodes refreshed within redis.node_ttl.
  std::vector<std::string> live_nodes_command() const;
  std::string conn_key(const std::string& id) const { return names_.conn(id); }
  std::string presence_key(const std::string& channel) const { return names_.presence(channel); }

  void register_presence(const std::string& channel, const std::string& id,
                         const std::string& user);

  // FCALL history; `done` on this thread. A failed read is a page with ok = false.
  void read_page(const history_query& q, std::function<void(history_page)> done);
  void shutdown_connections();

  // ---- connection life (the topology's events) ----

  void commands_up();
  void commands_down(const std::string& why);
  // Every subscription is to be made again (the subscriber connected), or is lost.
  void subscriber_up();
  void subscriber_down(const std::string& why);

  // History keys carry TTLs, so every eviction policy but noeviction may delete them under
  // memory pressure (volatile-* ones first of all): said once per connect, as a warning. Managed
  // Redis services that refuse CONFIG are not second-guessed.
  void check_eviction_policy();

  // FUNCTION LOAD, retried while Redis answers errors such as LOADING after a restart.
  void load_functions();
  void set_down(std::string reason);
  void update_status();

  // ---- subscriptions ----

  sub_state state_of(const std::string& name) const {
    const auto it = states_.find(name);
    return it == states_.end() ? sub_state::none : it->second;
  }

  void release(const std::string& name);
  void want(const std::string& name, bool wanted);
  void flush_subscriptions();
  // A channel's subscription is confirmed: waiters go on, a history channel reads what it missed.
  void subscription_confirmed(const std::string& name);
  void unsubscription_confirmed(const std::string& name);
  // A subscription lost on its own (its shard's slot moved or its primary failed).
  void subscription_interrupted(const std::string& name);
  void release_waiters(const std::string& name);
  void on_message(const std::string& channel, std::string_view payload);

  // A publication from Redis that is not delivered. Logged at most once a second (a backend
  // looping on a bad payload must not flood the log); the counters say how many.
  void drop(const std::string& channel, const std::string& reason, std::string_view payload);

  // Requests addressed to this node.
  void on_node_op(std::string_view payload);
  void on_control(std::string_view payload);
  void finish_request(std::uint64_t rid, remote_result r);
  void finish_question(std::uint64_t rid);

  // ---- directory ----

  static std::vector<std::string> directory_fields(const connection& c);
  void register_connection(const std::vector<std::string>& fields);

  // Every third of the TTL: refresh this node's entries (and their lastActiveAt).
  void schedule_refresh();

  // The liveness key, with this node's report for the console and the CLI, and its place in
  // <prefix>:nodes (a sorted set by refresh time: the live nodes without a SCAN).
  void refresh_alive();
  void schedule_alive();

  // ---- liveness probe ----

  void schedule_probe();
  void probe();

  const config& cfg_;
  const redis_config& rc_;
  const redis_names names_;
  logger& log_;
  connection_registry& registry_;
  delivery deliver_;
  worker_poster post_;
  const std::string node_;
  const std::string prefix_;
  const function_names fn_;
  const std::string library_;
  const std::string settings_;
  std::function<std::string()> summary_;  // set before start(); called on this thread

  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
  // One server, Sentinel's primary or a Redis Cluster. Made before start(), never replaced
  // (its counters are read by metrics from other threads); used on the backplane's thread.
  std::unique_ptr<redis_topology> topology_;
  asio::steady_timer probe_timer_;
  asio::steady_timer refresh_timer_;
  asio::steady_timer alive_timer_;

  // Backplane thread only.
  std::vector<std::string> fixed_;              // always subscribed
  std::unordered_map<std::string, int> refs_;   // workers interested in a Redis channel
  std::unordered_map<std::string, bool> want_;  // Redis channels we should be in
  std::unordered_map<std::string, sub_state> states_;
  std::unordered_set<std::string> dirty_;
  std::unordered_map<std::string, std::vector<std::pair<unsigned, std::function<void()>>>> waiters_;
  std::unordered_map<std::uint64_t, pending_request> requests_;
  std::unordered_map<std::uint64_t, pending_post> posts_;  // SSE POSTs forwarded, by rid
  post_handler post_handler_;
  void finish_post(std::uint64_t rid, int status, std::string body);
  std::unordered_map<std::uint64_t, pending_question> questions_;
  node_question question_;
  std::unique_ptr<history_sequencer> history_;  // the history channels' order and gaps
  std::unordered_map<std::string, std::unordered_map<std::string, std::string>>
      presence_local_;  // channel -> connection id -> user, for re-registration
  std::uint64_t next_rid_ = 0;
  std::uint64_t probe_nonce_ = 0;
  steady_clock::time_point probe_sent_;
  steady_clock::time_point last_drop_log_;
  bool sub_up_ = false;
  bool flush_posted_ = false;
  bool probe_outstanding_ = false;
  bool probe_failed_ = false;
  bool probe_confirmed_ = false;  // a probe came back since the subscriber (re)connected
  bool stopped_ = false;

  // Read by other threads.
  std::atomic<bool> cmd_up_{false};
  std::atomic<bool> up_{false};
  std::atomic<system_time_ms> down_since_ms_{now_ms()};
  std::atomic<std::uint64_t> outage_ms_{0};
  std::atomic<std::uint64_t> published_{0}, not_forwarded_{0}, failures_{0}, received_{0},
      probe_failures_{0}, stored_{0}, stored_duplicates_{0}, store_failures_{0}, stream_appends_{0},
      stream_failures_{0}, dropped_large_{0}, dropped_deep_{0}, outages_{0};
  std::atomic<std::int64_t> subscribed_count_{0};
  mutable std::mutex status_mutex_;
  backplane_status status_;
};

}  // namespace herald::redis
