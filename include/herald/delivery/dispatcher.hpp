// Delivers publications to local connections: by connection id, by user, by channel or to
// everyone. Each worker thread has its own topic index and connection set, so fan-out takes no
// locks: a channel publication is serialized once and posted once per worker, and each worker
// hands the same buffer to its subscribers.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "herald/common/metrics.hpp"
#include "herald/config/config.hpp"
#include "herald/delivery/backplane.hpp"
#include "herald/delivery/channel_policy.hpp"
#include "herald/delivery/connection.hpp"
#include "herald/delivery/connection_registry.hpp"
#include "herald/delivery/history.hpp"
#include "herald/delivery/publication.hpp"
#include "herald/delivery/topic_index.hpp"

namespace herald {

// How a subscription starts.
struct subscribe_options {
  std::optional<std::uint64_t> since;  // resume after this offset (history channels)
  std::string epoch;                   // the epoch `since` belongs to, when the client knows it
  bool from_ack = false;               // resume after the acknowledged offset (the inbox)
};

// Per-worker counters of the dispatcher (single writer: that worker).
struct dispatcher_metrics {
  counter deliveries;    // messages queued to connections
  counter publications;  // publications handled on this worker
  gauge channels;        // channels with local subscribers
  gauge subscriptions;
  counter replayed;            // history publications sent to resuming subscribers
  counter resumed;             // resumes that recovered everything
  counter not_recovered;       // resumes answered recovered:false
  counter duplicates_skipped;  // publications a subscriber had already been sent
  counter recovery_overflows;  // subscribers closed because live traffic outran their catch-up
  counter resyncs;             // resync frames sent to subscribers (history lost under them)
  counter gap_reads;   // history reads for subscribers that live publications had skipped over
  counter gap_closes;  // subscribers closed (1013) because such a read could not fill the gap
};

enum class subscribe_status { ok, invalid_channel, too_many, not_allowed };

// How a subscribe ended, and where a history channel's subscriber stands.
struct subscribe_result {
  subscribe_status status = subscribe_status::ok;
  bool history = false;    // the channel keeps history: offset and epoch are meaningful
  bool resumed = false;    // the subscriber asked to resume (since / inbox)
  bool recovered = false;  // ... and got everything it missed
  std::uint64_t offset = 0;
  std::string epoch;
  std::string error;  // history could not be read (recovered is false)
};

// Delivers publications to this node's connections and keeps their subscriptions.
class dispatcher {
 public:
  // `cluster` is the backplane the server picked (local or Redis): it hears this node's
  // interest and connections, forwards publications, and hands back what reaches this node
  // through deliver_from_cluster.
  dispatcher(const config& cfg, connection_registry& registry, backplane& backplane,
             unsigned workers, worker_poster post);
  ~dispatcher();

  // --- on the connection's worker thread ---
  void on_open(connection& conn);
  void on_close(connection& conn);
  // `done` runs on the connection's worker once messages published anywhere in the cluster
  // reach this subscription (at once on one node). On a history channel it runs once the
  // subscriber's position is known; what it missed (with `since`) follows right after, then
  // live publications, each exactly once and in offset order.
  void subscribe(connection& conn, std::string_view channel, subscribe_options opts,
                 std::function<void(subscribe_result)> done);
  void unsubscribe(connection& conn, std::string_view channel);
  std::vector<std::string> channels_of(const connection& conn) const;

  // --- any thread ---
  // Delivers `p` on this node and hands it to the other nodes. `done(recipients, forwarded)`
  // runs exactly once, on some thread: the connections here it was queued for (for a
  // connection on another node, 1 once that node queued it), and whether the cluster got it.
  void publish(publication p, std::function<void(publish_outcome)> done);
  // Delivers a publication that came from another node (or a backend through Redis) here only.
  void deliver_from_cluster(publication p);

  // Channels with subscribers on this node and how many (summed over the workers), in no
  // particular order; only `only` when it is not empty (then asking just the workers that hold
  // subscribers of it). `done` runs once, on the last worker to answer (at once if none).
  void channel_counts(
      const std::string& only,
      std::function<void(std::vector<std::pair<std::string, std::size_t>>)> done) const;

  const dispatcher_metrics& metrics(unsigned worker) const;
  unsigned workers() const { return static_cast<unsigned>(workers_.size()); }

 private:
  struct worker_state;
  struct cursor;
  std::size_t deliver_local(worker_state& w, const std::shared_ptr<const publication>& p);
  void fan_out(std::shared_ptr<const publication> p, std::function<void(std::size_t)> done);
  void catch_up(const std::shared_ptr<connection>& conn, const std::string& channel,
                const history_rule& rule, subscribe_options opts,
                std::function<void(subscribe_result)> done);
  void release_held(worker_state& w, const std::shared_ptr<connection>& conn,
                    const std::string& channel, cursor& cur);
  void refill(worker_state& w, const std::shared_ptr<connection>& conn, const std::string& channel,
              cursor& cur);
  static bool follows_gap(const cursor& cur, const publication& p);
  // The subscriber's place in a history channel; null once it left (or never joined).
  static cursor* find_cursor(worker_state& w, const std::string& channel, connection& conn);
  void leave(worker_state& w, connection& conn, const std::string& channel);
  // A replay never holds more than the client's send queue does.
  std::size_t recovery_limit() const {
    return std::min(cfg_.history.max_recovery, cfg_.websocket.send_queue.max_messages);
  }

  const config& cfg_;
  connection_registry& registry_;
  backplane& backplane_;
  worker_poster post_;
  std::vector<std::unique_ptr<worker_state>> workers_;
  channel_workers channel_workers_;  // where each channel has subscribers (any thread)
};

}  // namespace herald
