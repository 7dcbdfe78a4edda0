// API Gateway's routing model: $connect decides the handshake, each message is routed by the
// selection expression to a route's integration ($default when nothing matches; the AWS
// "Forbidden" frame when there is no $default), and $disconnect hears about every close.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "herald/common/log.hpp"
#include "herald/common/metrics.hpp"
#include "herald/config/config.hpp"
#include "herald/delivery/channel_policy.hpp"
#include "herald/delivery/connection.hpp"
#include "herald/delivery/dispatcher.hpp"
#include "herald/integrations/integration.hpp"
#include "herald/protocol/client_frames.hpp"
#include "herald/routing/event.hpp"
#include "herald/routing/route_selector.hpp"

namespace herald {

// The outcome of $connect: accept (optionally choosing the subprotocol and naming the user)
// or reject with an HTTP status the client sees as its handshake response.
struct connect_decision {
  bool accept = true;
  int status = 101;
  std::string body;
  std::string content_type;
  std::string subprotocol;
  std::string user_id;
  std::shared_ptr<const string_pairs> authorizer;  // principalId and context from the answer
};

using connect_callback = std::function<void(connect_decision)>;

// Consulted before a WebSocket upgrade is accepted.
class connect_handler {
 public:
  virtual ~connect_handler() = default;
  // On the connection's worker thread; `done` runs on the same thread, exactly once.
  virtual void on_connect(const connection_info& info, const connect_request& request,
                          const std::vector<std::string>& offered_subprotocols,
                          connect_callback done) = 0;
};

// Per-worker counters of the router (single writer: that worker).
struct router_metrics {
  counter invocations;
  counter failures;
  counter forbidden;
  counter connects_rejected;
  counter channel_actions;
  counter channel_denied;
  counter refused;  // messages nested deeper than limits.json_max_depth
  gauge inflight;
};

// Per-worker numbers of one route.
struct route_metrics {
  counter invocations;
  counter failures;
  latency_histogram latency;  // integration call duration
};

// Routes every connection event to its integration, and answers Herald's own actions.
class router final : public connection_handler, public connect_handler {
 public:
  using integration_map = std::map<std::string, std::unique_ptr<integration>>;

  // `integrations` must hold every integration the routes name. Throws config_error.
  // `dispatcher` delivers; `backplane` stores acknowledgements and answers presence queries.
  router(const config& cfg, logger& log, integration_map integrations, dispatcher& dispatcher,
         backplane& backplane, unsigned workers);
  ~router() override;

  void on_connect(const connection_info& info, const connect_request& request,
                  const std::vector<std::string>& offered_subprotocols,
                  connect_callback done) override;
  void on_open(const std::shared_ptr<connection>& conn) override;
  void on_message(connection& conn, std::string_view payload, bool binary) override;
  void on_close(connection& conn, std::uint16_t code, std::string_view reason) override;

  bool has_connect_route() const { return connect_ != nullptr; }
  // Calls f(route_key, worker, metrics) for every route and worker (for /metrics).
  template <class F>
  void for_each_route_metrics(F&& f) const {
    for (const auto& [key, r] : routes_) {
      for (unsigned w = 0; w < r.metrics.size(); ++w)
        f(key, w, *r.metrics[w]);
    }
  }
  // Integration calls in progress on all workers (shutdown waits for them).
  std::int64_t inflight() const;
  const router_metrics& metrics(unsigned worker) const { return *metrics_[worker]; }
  unsigned workers() const { return static_cast<unsigned>(metrics_.size()); }

 private:
  struct route_entry {
    route_config cfg;
    integration* target = nullptr;
    std::vector<std::unique_ptr<route_metrics>> metrics;  // per worker
  };

  using channel_verb = protocol::channel_verb;

  const route_entry* lookup(const std::optional<std::string>& key) const;
  // `doc` is the message, parsed with the depth bound (discarded if it was not JSON).
  void channel_action(connection& conn, const nlohmann::json& doc, channel_verb verb);
  void heartbeat(connection& conn, const nlohmann::json& doc);
  // After the policy allowed it: subscribe, or publish `data_json`.
  void channel_go(const std::shared_ptr<connection>& conn, channel_verb verb,
                  const std::string& channel, const std::string& data_json,
                  const std::string& id_json, const subscribe_options& opts);
  // Asks a channel rule's integration (SUBSCRIBE or PUBLISH event).
  void invoke_channel_gate(integration* gate, event_input in, const std::string& request_id,
                           std::function<void(integration_result)> then);
  // Builds the event (when the integration wants one), invokes the route's integration, keeps
  // the counters, logs a failure, then hands the result to `then`, on the same worker thread.
  void invoke_route(const route_entry& route, event_input in, const std::string& request_id,
                    std::function<void(integration_result)> then);

  const config& cfg_;
  logger& log_;
  dispatcher& dispatcher_;
  backplane& backplane_;
  integration_map integrations_;
  route_selector selector_;
  channel_policy policy_;
  std::unordered_map<std::string, route_entry> routes_;
  const route_entry* connect_ = nullptr;
  const route_entry* disconnect_ = nullptr;
  const route_entry* default_ = nullptr;
  std::vector<std::unique_ptr<router_metrics>> metrics_;
};

}  // namespace herald
