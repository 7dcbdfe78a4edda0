// What makes several nodes act as one: publications forwarded to the other nodes, this node's
// interest in channels and users, and a directory of connections so any node can reach any
// connection. `local` (one node) or `redis`; the rest of Herald does not know which.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "herald/common/prometheus.hpp"
#include "herald/common/worker_poster.hpp"
#include "herald/delivery/connection.hpp"
#include "herald/delivery/history.hpp"
#include "herald/delivery/publication.hpp"

namespace herald {

// A connection held by another node, as the directory knows it.
struct remote_connection {
  std::string node;
  std::string connection_id;
  std::string user_id;
  system_time_ms connected_at = 0;
  system_time_ms last_active_at = 0;
  std::string source_ip;
  std::string user_agent;
  std::string subprotocol;
};

enum class remote_result { queued, dropped, gone, unavailable };

// One subscriber of a presence channel.
struct presence_member {
  std::string connection_id;
  std::string user_id;
  std::string node;
};

// The answer to a presence query.
struct presence_result {
  bool ok = false;
  std::string error;
  std::vector<presence_member> members;
  bool truncated = false;  // more than the limit asked for
};

// Whether the backplane can do its work, for readiness and the console.
struct backplane_status {
  std::string kind = "local";  // which backplane: "local" or "redis"
  bool up = true;
  std::string reason;         // why not, for /readyz
  double outage_seconds = 0;  // how long the backplane has been down in all
};

// A node of the cluster as the others see it: its liveness entry, refreshed every third of
// redis.node_ttl with what it reports about itself (summary_json, the shape of GET /v1/node).
struct node_entry {
  std::string node;
  std::string summary_json;  // "{}" when the node reported nothing
  system_time_ms at = 0;     // when it last refreshed
};

// What one node answers about itself when another asks (ask_other_nodes): JSON text.
using node_question = std::function<std::string(std::string_view kind, std::string_view arg)>;
struct node_reply {
  std::string node;
  std::string answer_json;
};
struct cluster_replies {
  bool asked = false;                // the question went out (a cluster, and Redis took it)
  std::vector<node_reply> answered;  // in the order the answers came
  std::vector<std::string> silent;   // listed as alive, but no answer within the time
};

// The cluster as this node sees it (see the top of this file).
class backplane {
 public:
  virtual ~backplane() = default;

  virtual void start() {}
  // Leaves the cluster (directory entries, liveness key), then calls `done`.
  virtual void stop(std::function<void()> done) { done(); }

  // Hands a publication this node has delivered locally to the other nodes. `done(true)` once
  // Redis has answered that it took it; `done(false)` when it could not be forwarded (the
  // backplane is down or frozen, or there is none). `done` runs once, on any thread.
  virtual void forward(const publication& p, std::function<void(bool)> done) = 0;

  // This node's interest, reported by worker threads on the first subscriber / last one gone.
  // `ready` runs on `worker` once cluster messages for the channel reach this node.
  virtual void channel_added(const std::string& channel, unsigned worker,
                             std::function<void()> ready) = 0;
  virtual void channel_removed(const std::string& channel) = 0;
  virtual void user_added(const std::string& user) = 0;
  virtual void user_removed(const std::string& user) = 0;

  // The connection directory. Callbacks may run on any thread.
  virtual void connection_opened(const connection& c) = 0;
  virtual void connection_closed(const connection& c) = 0;
  virtual void locate(const std::string& connection_id,
                      std::function<void(std::optional<remote_connection>)> done) = 0;
  virtual void send_remote(const remote_connection& where, message_ptr payload, bool binary,
                           std::function<void(remote_result)> done) = 0;
  virtual void close_remote(const remote_connection& where, std::uint16_t code,
                            std::string reason) = 0;
  // Asks every other live node a question (`kind`, `arg`) that its node_question answers (a
  // user's connections there, or closing them). `done` once every node listed as alive has
  // answered, or after redis.remote_timeout with the silent ones named; on any thread. Without a
  // cluster: done({}) at once.
  virtual void ask_other_nodes(std::string kind, std::string arg,
                               std::function<void(cluster_replies)> done) {
    (void)kind;
    (void)arg;
    done({});
  }
  // How this node answers the others' questions; called on the backplane's own thread. Set
  // once, before start().
  virtual void set_node_question(node_question answer) { (void)answer; }

  // The SSE fallback's POSTs, which a load balancer may send to any node: `node` holds the
  // stream named by `token` and hands it `body` (its post handler; `end`: a DELETE, the client
  // ends the stream), then answers with the HTTP status and body of the reply. `done` once, on any
  // thread: 404 when the node is gone, 503 when it did not answer within redis.remote_timeout or
  // the backplane is down.
  using post_reply = std::function<void(int status, std::string body)>;
  using post_handler =
      std::function<void(std::string token, std::string body, bool end, post_reply done)>;
  virtual void post_remote(const std::string& node, std::string token, std::string body, bool end,
                           post_reply done) {
    (void)node;
    (void)token;
    (void)body;
    (void)end;
    done(404, {});
  }
  // How this node takes the POSTs other nodes forward; set once, before start().
  virtual void set_post_handler(post_handler handler) { (void)handler; }

  // ---- durable delivery ----

  // Stores a channel publication in the channel's history (`rule`) and publishes it with its
  // offset. Subscribers everywhere, this node's too, receive it through the backplane in offset
  // order (deliver_from_cluster). A repeated idempotency key stores nothing and is reported as
  // a duplicate. `done` runs once, on any thread.
  virtual void publish_stored(const publication& p, const history_rule& rule,
                              std::function<void(stored_result)> done) = 0;
  // Reads a channel's history. `done` runs on worker `worker`, after every publication this node
  // received before the read was answered was handed to that worker.
  virtual void read_history(history_query q, const history_rule& rule, unsigned worker,
                            std::function<void(history_page)> done) = 0;
  // Raises a channel's acknowledged offset (the inbox). `done(acked)`, on any thread; nullopt
  // when the store could not be reached.
  virtual void ack(const std::string& channel, std::uint64_t offset,
                   std::function<void(std::optional<std::uint64_t>)> done) = 0;

  // ---- presence ----
  virtual void presence_join(const std::string& channel, const connection& c) = 0;
  virtual void presence_leave(const std::string& channel, const connection& c) = 0;
  // `done` on any thread.
  virtual void presence(const std::string& channel, std::size_t limit,
                        std::function<void(presence_result)> done) = 0;

  // ---- store-first ----
  // Appends an entry to a Redis stream (XADD key MAXLEN ~ max_length * field value ...).
  // `done(ok, entry id or error)` on any thread.
  virtual void append_stream(std::string key,
                             std::vector<std::pair<std::string, std::string>> fields,
                             std::size_t max_length,
                             std::function<void(bool, std::string)> done) = 0;

  // ---- the cluster, for operators ----
  // What this node reports about itself in its liveness entry (the text of a JSON object);
  // called on the backplane's own thread. Set once, before start().
  virtual void set_node_summary(std::function<std::string()> summary) { (void)summary; }
  // The live nodes (this one included) with their last report; none on a single node.
  // `done` on any thread.
  virtual void nodes(std::function<void(std::vector<node_entry>)> done) { done({}); }

  virtual backplane_status status() const = 0;
  virtual void write_metrics(prometheus_text& out) const = 0;
};

// Where a backplane hands what reaches this node from the cluster (and, on one node, what it
// stored): the dispatcher's deliver_from_cluster. Any thread.
using delivery = std::function<void(publication)>;

// One node, no Redis: nothing to forward, nobody else to find; history and presence in memory.
std::unique_ptr<backplane> make_local_backplane(const config& cfg, delivery deliver,
                                                worker_poster post);

}  // namespace herald
