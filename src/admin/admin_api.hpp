// The admin listener's API: AWS-compatible @connections (so code written for API Gateway's
// management API works unchanged), Herald's /v1 publish and query endpoints, and /metrics.
// Authenticated with API keys or AWS SigV4; health, readiness and metrics are open.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "herald/auth/sigv4.hpp"
#include "herald/delivery/backplane.hpp"
#include "herald/delivery/dispatcher.hpp"
#include "herald/routing/router.hpp"
#include "net/http_handler.hpp"

namespace herald::net {

// A query-string value (decoded), or empty.
std::string query_value(std::string_view target, std::string_view name);
// A count from the query string: `fallback` when absent, nullopt when not a number in range.
std::optional<std::size_t> query_count(std::string_view target, std::string_view name,
                                       std::size_t fallback, std::size_t min, std::size_t max);

// The console's files (index.html, its script and style), built into the binary from
// web/console/: GET /console/ and /console/<file>; 404 for anything else.
http_response console_asset(std::string_view path);

// The admin listener's API: @connections, publish, connections, users, channels, metrics.
class admin_api final : public http_handler {
 public:
  // `backplane`: the connection directory, history and presence stores, the node list.
  admin_api(server_context& ctx, dispatcher& dispatcher, backplane& backplane, const router& router,
            worker_poster post);

  void handle(http_request&& req, const request_context& rc, http_responder respond) override;
  // A request on the client listener (admin.client_listener_connections): @connections paths
  // are answered, with SigV4 only (true); anything else is left to the caller (false, and
  // `respond` is not called).
  bool handle_on_client_listener(http_request& req, const request_context& rc,
                                 http_responder& respond);

  // This node's answer when another node asks (backplane::set_node_question): "user_connections"
  // (arg {"user", "limit"}: {"count", "connections": the newest `limit`}) and "close_user" (arg:
  // the user id; {"closed": n}). Any thread.
  std::string answer_node_question(std::string_view kind, std::string_view arg);

  // The /metrics body.
  std::string render_metrics() const;
  // What this node says about itself, as JSON text (published in its liveness entry for the
  // cluster view): id, version, start, connections, counters.
  std::string node_summary() const;

 private:
  enum class api : std::uint8_t {
    aws_connections,
    publish,
    connections,
    users,
    channels,
    metrics,
    nodes,
    console,
    other,
    count
  };
  static constexpr std::array<unsigned, 14> statuses{200, 202, 204, 400, 401, 403, 404,
                                                     405, 410, 413, 415, 429, 500, 503};
  enum class auth : std::uint8_t { ok, missing, invalid };

  // `sigv4_only`: API keys are refused (the client listener).
  auth authenticate(const http_request& req, std::string& why, bool sigv4_only = false) const;
  void count(api which, unsigned status);

  void aws_connection(http_request& req, std::string_view id_text, const http_responder& respond);
  void publish(http_request& req, const http_responder& respond);
  // A connection here, or one another node holds (from the directory), or neither.
  struct located {
    std::shared_ptr<connection> local;
    std::optional<remote_connection> remote;
  };
  void locate(const connection_id& id, std::function<void(located)> done) const;
  void send_to(const located& where, message_ptr payload, bool binary,
               std::function<void(remote_result)> done);
  void close(const located& where, std::uint16_t code, std::string reason);
  // This node's part of a cluster-wide user query or close (answer_node_question's kinds).
  nlohmann::json user_connections_here(const std::string& user, std::size_t limit) const;
  std::size_t close_user_here(const std::string& user);
  void get_connection(std::string_view id_text, const http_responder& respond);
  void list_connections(const http_request& req, const http_responder& respond);
  void delete_connection(std::string_view id_text, const http_responder& respond);
  void delete_user(std::string_view user, const http_responder& respond);
  void channel_history(const http_request& req, std::string_view channel,
                       const http_responder& respond);
  void channel_presence(std::string_view channel, const http_responder& respond);
  // The console's views (admin_overview.cpp).
  nlohmann::json summary_document() const;  // node_summary() before it is text
  void get_node(const http_responder& respond);
  void list_nodes(const http_responder& respond);
  void list_channels(const http_request& req, const http_responder& respond);
  void get_channel(std::string_view channel, const http_responder& respond);

  server_context& ctx_;
  dispatcher& dispatcher_;
  backplane& backplane_;
  const router& router_;
  worker_poster post_;
  sigv4_key sigv4_;
  std::vector<std::string> key_digests_;  // SHA-256 of each API key: compared in constant time
  system_time_ms started_ = 0;
  // Requests by API and status (the last column counts any other status).
  std::array<std::array<std::atomic<std::uint64_t>, statuses.size() + 1>,
             static_cast<std::size_t>(api::count)>
      requests_{};
};

// The client listener's chain with admin.client_listener_connections: @connections to the admin
// API (SigV4 only), everything else to `next` (or 404).
class client_connections_handler final : public http_handler {
 public:
  client_connections_handler(admin_api& api, http_handler* next) : api_(api), next_(next) {}
  void handle(http_request&& req, const request_context& rc, http_responder respond) override;

 private:
  admin_api& api_;
  http_handler* next_;
};

}  // namespace herald::net
