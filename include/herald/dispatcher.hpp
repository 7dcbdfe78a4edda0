// Delivers publications to local connections: by connection id, by user, by channel or to
// everyone. Each worker thread has its own topic index and connection set, so fan-out takes no
// locks: a channel publication is serialized once and posted once per worker, and each worker
// hands the same buffer to its subscribers.
#pragma once

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
#include "herald/config.hpp"
#include "herald/connection.hpp"
#include "herald/connection_registry.hpp"
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

  // A JSON publication: {"type":"message",("channel":...,)("id":...,)"data":...}.
  static publication message(target_kind kind, std::string target, std::string data_json,
                             std::string id = {});
};

// Runs `fn` on worker `index`'s thread.
using worker_poster = std::function<void(unsigned index, std::function<void()> fn)>;

// Per-worker counters of the dispatcher (single writer: that worker).
struct dispatcher_metrics {
  counter deliveries;    // messages queued to connections
  counter publications;  // publications handled on this worker
  gauge channels;        // channels with local subscribers
  gauge subscriptions;
};

enum class subscribe_status { ok, invalid_channel, too_many, not_allowed };

class dispatcher {
 public:
  dispatcher(const config& cfg, connection_registry& registry, unsigned workers,
             worker_poster post);
  ~dispatcher();

  // The cluster this node belongs to (a local_backplane until set). Set before serving.
  void set_backplane(backplane& b) { cluster_ = &b; }

  // --- on the connection's worker thread ---
  void on_open(connection& conn);
  void on_close(connection& conn);
  // `done` runs on the connection's worker once messages published anywhere in the cluster
  // reach this subscription (at once on one node).
  void subscribe(connection& conn, std::string_view channel,
                 std::function<void(subscribe_status)> done);
  void unsubscribe(connection& conn, std::string_view channel);
  std::vector<std::string> channels_of(const connection& conn) const;

  // --- any thread ---
  // Delivers `p` on this node and hands it to the other nodes. `done(recipients, forwarded)`
  // runs exactly once, on some thread: the connections here it was queued for (for a
  // connection on another node, 1 once that node queued it), and whether the cluster got it.
  void publish(publication p, std::function<void(std::size_t recipients, bool forwarded)> done);
  // Delivers a publication that came from another node (or a backend through Redis) here only.
  void deliver_from_cluster(publication p);

  const dispatcher_metrics& metrics(unsigned worker) const;
  unsigned workers() const { return static_cast<unsigned>(workers_.size()); }

  // Why a channel name is unacceptable, or nullopt when it is fine: 1..max_length bytes of
  // A-Z a-z 0-9 and . _ - : @ / = + (no spaces, no control or non-ASCII bytes).
  static std::optional<std::string> check_channel(std::string_view name, std::size_t max_length);

  // Frames for what clients receive. `data_json` is already JSON text.
  static std::string message_frame(std::string_view channel, std::string_view data_json,
                                   std::string_view id = {});
  static std::string reply_frame(std::string_view type, std::string_view channel,
                                 std::string_view id_json = {});
  static std::string error_reply(std::string_view code, std::string_view message,
                                 std::string_view channel, std::string_view id_json = {});

 private:
  struct worker_state;
  std::size_t deliver_local(worker_state& w, const publication& p);
  void fan_out(std::shared_ptr<const publication> p, std::function<void(std::size_t)> done);

  const config& cfg_;
  connection_registry& registry_;
  worker_poster post_;
  local_backplane local_;
  backplane* cluster_ = &local_;
  std::vector<std::unique_ptr<worker_state>> workers_;
};

}  // namespace herald
