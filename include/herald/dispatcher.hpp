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

#include "herald/backplane.hpp"
#include "herald/channel_policy.hpp"
#include "herald/config.hpp"
#include "herald/connection.hpp"
#include "herald/connection_registry.hpp"
#include "herald/history.hpp"
#include "herald/metrics.hpp"
#include "herald/topic_index.hpp"

namespace herald {

enum class target_kind { connection, user, channel, broadcast };

std::string_view to_string(target_kind k);

struct publication {
  target_kind kind = target_kind::channel;
  std::string target;                          // connection id, user id or channel name
  std::shared_ptr<const std::string> payload;  // the frame as it goes on the wire
  bool binary = false;
  std::string exclude;  // a connection id to skip (e.g. the sender)
  // What other nodes need to build the same frame (JSON publications only).
  std::string data_json;
  std::string id;
  // History channels: the position in the channel's history (0: not stored).
  std::uint64_t offset = 0;
  std::string epoch;
  // Presence channels: "join" or "leave" (the frame's type; data_json is the member).
  std::string event;
  // A retried publication with the same key is stored once (history channels).
  std::string idempotency_key;

  // A JSON publication: {"type":"message",("channel":...,)("id":...,)"data":...}.
  static publication message(target_kind kind, std::string target, std::string data_json,
                             std::string id = {});
  // A publication read back from a channel's history, or received with its offset.
  static publication stored(std::string channel, std::string data_json, std::string id,
                            std::uint64_t offset, std::string epoch);
  // {"type":"join"|"leave","channel":...,"info":{...}}.
  static publication presence_event(std::string channel, std::string event, std::string info_json);
  // {"type":"resync","channel":...,"epoch":...,"offset":N,"reason":...}: the channel's history
  // was lost while this node could not follow it; delivery goes on after `offset` of `epoch`.
  static publication resync(std::string channel, std::string epoch, std::uint64_t offset,
                            std::string_view reason);
};

// What happened to a publication.
struct publish_outcome {
  std::size_t recipients = 0;  // connections on this node it was queued for (not stored ones)
  bool forwarded = false;      // handed to the other nodes
  bool stored = false;         // a history channel: see `store`
  stored_result store;
};

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
};

enum class subscribe_status { ok, invalid_channel, too_many, not_allowed };

struct subscribe_result {
  subscribe_status status = subscribe_status::ok;
  bool history = false;    // the channel keeps history: offset and epoch are meaningful
  bool resumed = false;    // the subscriber asked to resume (since / inbox)
  bool recovered = false;  // ... and got everything it missed
  std::uint64_t offset = 0;
  std::string epoch;
  std::string error;  // history could not be read (recovered is false)
};

class dispatcher {
 public:
  dispatcher(const config& cfg, connection_registry& registry, unsigned workers,
             worker_poster post);
  ~dispatcher();

  // The cluster this node belongs to (a local backplane until set). Set before serving.
  void set_backplane(backplane& b) { cluster_ = &b; }
  backplane& cluster() const { return *cluster_; }

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

  // Why a channel name is unacceptable, or nullopt when it is fine: 1..max_length bytes of
  // A-Z a-z 0-9 and . _ - : @ / = + (no spaces, no control or non-ASCII bytes).
  static std::optional<std::string> check_channel(std::string_view name, std::size_t max_length);

  // Frames for what clients receive. `data_json` is already JSON text.
  static std::string message_frame(std::string_view channel, std::string_view data_json,
                                   std::string_view id = {}, std::uint64_t offset = 0,
                                   std::string_view epoch = {});
  static std::string reply_frame(std::string_view type, std::string_view channel,
                                 std::string_view id_json = {});
  static std::string error_reply(std::string_view code, std::string_view message,
                                 std::string_view channel, std::string_view id_json = {});

 private:
  struct worker_state;
  struct cursor;
  std::size_t deliver_local(worker_state& w, const std::shared_ptr<const publication>& p);
  void fan_out(std::shared_ptr<const publication> p, std::function<void(std::size_t)> done);
  void catch_up(const std::shared_ptr<connection>& conn, const std::string& channel,
                const history_rule& rule, subscribe_options opts,
                std::function<void(subscribe_result)> done);
  void leave(worker_state& w, connection& conn, const std::string& channel);
  // A replay never holds more than the client's send queue does.
  std::size_t recovery_limit() const {
    return std::min(cfg_.history.max_recovery, cfg_.websocket.send_queue.max_messages);
  }

  const config& cfg_;
  connection_registry& registry_;
  worker_poster post_;
  std::unique_ptr<backplane> local_;
  backplane* cluster_ = nullptr;
  std::vector<std::unique_ptr<worker_state>> workers_;
  channel_workers channel_workers_;  // where each channel has subscribers (any thread)
};

}  // namespace herald
