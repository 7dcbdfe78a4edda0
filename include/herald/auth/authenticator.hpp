// Authentication of WebSocket upgrades, before $connect: a JWT (auth.jwt) and/or a REQUEST
// authorizer called over HTTP (auth.authorizer), as API Gateway's Lambda REQUEST authorizer.
// Both produce the connection's user id and the `requestContext.authorizer` map every later
// event of the connection carries. Socket-free: the HTTP session calls it with the request.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "herald/auth/jwt.hpp"
#include "herald/config/config.hpp"
#include "herald/delivery/connection.hpp"
#include "herald/routing/event.hpp"

namespace herald {

class integration;
class logger;

// The keys of auth.jwt (inline, files, environment, JWKS). Throws config_error naming the key.
jwt::key_set load_jwt_keys(const jwt_config& cfg);

// The token of an upgrade request, from the configured sources in order. A token carried in a
// subprotocol is removed from `offered`, so it is never chosen (echoed) or seen by $connect.
std::optional<std::string> find_token(const jwt_config& cfg, const connect_request& request,
                                      std::vector<std::string>& offered);

// The authorizer context of a verified token: principalId (the user) and every claim, strings
// as they are and other values as JSON text (so a "channels" array feeds channel rules with
// access "claim").
string_pairs claims_context(const nlohmann::json& claims, std::string_view principal);

// What an authorizer's HTTP answer means (API Gateway REQUEST authorizer output:
// {"principalId", "policyDocument": {"Statement": [{"Action", "Effect", "Resource"}]},
// "context": {string | number | boolean}}).
struct authorizer_answer {
  enum class verdict { allow, deny, unauthorized, error } what = verdict::error;
  std::string principal_id;
  string_pairs context;  // values as strings, as API Gateway passes them on
  std::string error;     // why an answer is unusable (for the log)
};
authorizer_answer parse_authorizer_answer(int status, std::string_view body,
                                          std::string_view method_arn, std::size_t max_json_depth);

// The verdict on an upgrade.
struct auth_outcome {
  bool accept = true;
  int status = 200;     // when refused: 401, 403 or 500
  std::string reason;   // for the log and the error body's message (never the token)
  std::string user_id;  // empty: anonymous
  std::shared_ptr<const string_pairs> authorizer;
  system_time_ms expires_at = 0;  // auth.jwt.close_on_expiry: close the connection then

  void refuse(int http_status, std::string why) {
    accept = false;
    status = http_status;
    reason = std::move(why);
  }
};

// Decides who a WebSocket upgrade belongs to: JWT and/or REQUEST authorizer, before $connect.
class authenticator {
 public:
  // `authorizer` is the integration named by auth.authorizer.integration (or null).
  authenticator(const config& cfg, logger& log, integration* authorizer);
  ~authenticator();

  bool enabled() const { return jwt_on_ || authorizer_ != nullptr; }

  // On the connection's worker thread; `done` runs on that thread too (maybe before returning).
  void authenticate(const connection_info& info, const connect_request& request,
                    std::vector<std::string>& offered, std::function<void(auth_outcome)> done);

  // Re-reads key files and the JWKS file (SIGHUP). On failure keeps the old keys and throws
  // config_error. Returns the number of keys now in use.
  std::size_t reload();

 private:
  struct cache_entry {
    std::chrono::steady_clock::time_point expires;
    authorizer_answer answer;
  };
  // One cache for the node (all workers), so an identity is asked once per cache_ttl.
  struct answer_cache {
    std::mutex mutex;
    std::unordered_map<std::string, cache_entry> entries;
    std::vector<std::string> order;  // insertion order, for eviction
    std::size_t next = 0;
  };
  std::optional<authorizer_answer> cached(const std::string& key);
  void remember(const std::string& key, const authorizer_answer& a);

  void check_jwt(const connection_info& info, const connect_request& request,
                 std::vector<std::string>& offered, auth_outcome& out);
  void call_authorizer(const connection_info& info, const connect_request& request,
                       auth_outcome out, std::function<void(auth_outcome)> done);
  static void apply(const authorizer_answer& a, auth_outcome& out);
  std::shared_ptr<const jwt::key_set> keys() const;

  const config& cfg_;
  logger& log_;
  integration* authorizer_;
  bool jwt_on_;
  jwt::verify_options verify_options_;
  std::string method_arn_;
  mutable std::mutex keys_mutex_;
  std::shared_ptr<const jwt::key_set> keys_;
  answer_cache cache_;
};

}  // namespace herald
