// Herald's configuration: one plain struct, parsed and validated once at start-up
// (defaults < config file < HERALD_* environment < command-line flags) and then
// passed by const reference to every component. Nothing reads configuration later.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald {

using duration = std::chrono::milliseconds;

enum class log_level { trace, debug, info, warn, error, critical, off };
enum class log_format { text, json };
enum class tls_mode { off, auto_detect, required };
enum class tls_version { v1_2, v1_3 };
enum class binary_policy { reject, base64 };
enum class overflow_policy { close, drop };
enum class integration_kind { http, echo, mock, redis_stream };
enum class backplane_kind { local, redis };
enum class response_mode { http, lambda_proxy };

// A host and port to listen on. Port 0 asks the kernel for a free port.
struct endpoint {
  std::string host;
  std::uint16_t port = 0;

  std::string to_string() const;
  friend bool operator==(const endpoint&, const endpoint&) = default;
};

// log.*: level and format.
struct log_config {
  log_level level = log_level::info;
  log_format format = log_format::text;
};

// tls.*: certificates and protocol versions of the client listener.
struct tls_config {
  tls_mode mode = tls_mode::off;
  std::string cert_file;
  std::string key_file;
  tls_version min_version = tls_version::v1_2;
  // TLS 1.2 cipher list: Mozilla's "intermediate" (forward secrecy and AEAD only); empty means
  // OpenSSL's default, which still offers AES-CBC without forward secrecy (AES128-SHA).
  std::string ciphers =
      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
      "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
      "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
  std::string ciphersuites;  // TLS 1.3 suites; empty = OpenSSL's default
  duration handshake_timeout = std::chrono::seconds(10);
  // Resumption by session tickets (stateless: nothing kept per session on the server); off:
  // OpenSSL's per-node session cache instead.
  bool session_tickets = true;
  // 80 bytes (name, HMAC and AES keys) that encrypt the tickets, the same on every node behind
  // a load balancer so a client resumes on any of them; empty: a random key per process.
  std::string ticket_key_file;
};

// admin.sigv4.*: AWS-style request signing for the admin API.
struct sigv4_config {
  std::string access_key_id;  // empty: SigV4 is off
  std::string secret_access_key;
  std::string region;  // empty: any region
  duration max_skew = std::chrono::minutes(5);
};

// admin.*: the admin listener and its credentials.
struct admin_config {
  bool enabled = true;
  endpoint listen{"127.0.0.1", 8081};
  std::vector<std::string> api_keys;  // accepted as "Authorization: Bearer" or "x-api-key"
  sigv4_config sigv4;
  bool allow_unauthenticated = false;  // needed to run without keys on a non-loopback address
  std::size_t max_batch = 100;         // publications in one /v1/publish request
  // @connections also on the client listener (as API Gateway serves it on the API's own host),
  // SigV4 only.
  bool client_listener_connections = false;
};

// http.*: request limits, timeouts, trusted proxies and static files.
struct http_config {
  // Peers (CIDR) whose X-Forwarded-For is believed; everyone else's is ignored.
  std::vector<std::string> trusted_proxies;
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_url_bytes = 4096;
  std::size_t max_body_bytes = 1024 * 1024;
  duration request_timeout = std::chrono::seconds(10);
  duration keepalive_timeout = std::chrono::seconds(60);
  std::string static_dir;  // files served over GET on the client listener; empty: off
};

// websocket.send_queue.*: the bound of each connection's outbound queue and its policy.
struct send_queue_config {
  std::size_t max_messages = 1024;
  std::size_t max_bytes = 1024 * 1024;
  overflow_policy policy = overflow_policy::close;
  duration write_timeout = std::chrono::seconds(30);
};

// websocket.rate_limit.*: the token bucket of client messages per connection.
struct rate_limit_config {
  double messages_per_second = 100;  // 0 disables
  double burst = 200;
  std::size_t max_violations = 100;  // throttled messages before the connection is closed; 0: never
};

// websocket.compression.*: permessage-deflate (RFC 7692). A message is compressed once for all
// its recipients (no context takeover), so the cost is per publication, not per connection.
struct compression_config {
  bool enabled = false;
  std::size_t min_bytes = 256;      // smaller messages go uncompressed on compressed connections
  int level = 6;                    // zlib level 1 (fastest) .. 9 (smallest)
  int server_max_window_bits = 15;  // our window when the client does not ask for a smaller one
};

// Per client address (behind http.trusted_proxies) limits on upgrades.
struct per_ip_config {
  double connect_rate = 0;  // new connections per second per address; 0 disables
  double connect_burst = 20;
  std::size_t max_connections = 0;  // open connections per address; 0 disables
};
// websocket.*: the client listener's WebSocket limits, timeouts and policies.
struct websocket_config {
  std::string path = "/";
  std::string heartbeat_action = "$heartbeat";  // answered {"type":"heartbeat"} by Herald
  std::size_t max_message_bytes = 128 * 1024;
  std::size_t max_frame_bytes = 128 * 1024;
  binary_policy binary = binary_policy::reject;
  duration handshake_timeout = std::chrono::seconds(10);
  duration idle_timeout = std::chrono::minutes(10);
  duration max_duration = std::chrono::hours(2);
  duration ping_interval = std::chrono::seconds(30);
  duration pong_timeout = std::chrono::seconds(20);
  duration close_timeout = std::chrono::seconds(5);
  std::size_t max_connections = 100000;
  std::vector<std::string> subprotocols;
  // Origin header globs allowed to connect (e.g. "https://*.example.com"); empty: any. Requests
  // without an Origin (non-browser clients) are allowed either way.
  std::vector<std::string> allowed_origins;
  per_ip_config per_ip;
  send_queue_config send_queue;
  rate_limit_config rate_limit;
  compression_config compression;
};

// A backend that routes are wired to. `kind` decides which fields matter.
struct integration_config {
  std::string name;
  integration_kind kind = integration_kind::echo;
  // http: POST an API Gateway-shaped event to `url`.
  std::string url;
  response_mode mode = response_mode::lambda_proxy;
  duration timeout = std::chrono::seconds(29);
  duration connect_timeout = std::chrono::seconds(5);
  duration keepalive_timeout = std::chrono::seconds(4);
  std::size_t max_concurrency = 256;  // requests in flight (all workers together)
  std::size_t max_pending = 1024;     // requests waiting for a free connection
  std::size_t max_response_bytes = 1024 * 1024;
  std::vector<std::pair<std::string, std::string>> headers;  // added to every request
  bool tls_verify = true;
  std::string ca_file;  // extra CA bundle for https backends
  // redis_stream (store-first): MESSAGE events are appended to `stream` (default
  // <prefix>:queue:{route}) and the client is acknowledged at once; workers read the stream.
  std::string stream;
  std::size_t max_length = 100000;  // approximate MAXLEN of the stream
  // mock: a fixed answer.
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> response_headers;
};

// A route: which integration handles it, and whether its answer goes back on the socket.
struct route_config {
  std::string key;
  std::string integration;
  bool response = false;
};

// routing.*: route selection and the values events carry.
struct routing_config {
  std::string selection_expression = "$request.body.action";
  std::string api_id = "herald";
  std::string stage = "default";
  std::string domain_name;  // empty: the Host header of the upgrade request
  std::size_t max_inflight_per_connection = 16;
};

enum class channel_access { open, claim, integration, deny };

// Who may use the channels matching `pattern` (a glob: `*` any run of characters, `?` one;
// `{user}` is replaced by the connection's user id).
struct channel_rule {
  std::string pattern;
  channel_access access = channel_access::open;
  std::string claim = "channels";  // claim: the authorizer context key listing allowed patterns
  std::string integration;         // integration: asked with a SUBSCRIBE/PUBLISH event
  bool publish = false;            // clients may also publish here (channels.publish_action)
};

// channels.*: the built-in channel actions, their limits and access rules.
struct channels_config {
  std::size_t max_name_length = 128;
  std::size_t max_per_connection = 128;  // subscriptions one connection may hold
  // Route keys served by the built-in channel actions ("" turns one off).
  std::string subscribe_action = "subscribe";
  std::string unsubscribe_action = "unsubscribe";
  std::string publish_action;                            // off unless set (e.g. "publish")
  std::vector<channel_rule> rules;                       // first match decides
  channel_access default_access = channel_access::open;  // when no rule matches
};

// Channels whose publications are kept (in Redis Streams with the redis backplane, in memory
// with the local one) so subscribers can resume from an offset.
struct history_rule {
  std::string pattern;                    // glob: `*` any run of characters, `?` one
  std::size_t size = 1000;                // newest publications kept
  duration ttl = std::chrono::hours(24);  // publications older than this are not replayed
};

// history.*: which channels keep history, and how much a resume may replay.
struct history_config {
  std::vector<history_rule> rules;  // first match decides; no match: no history
  // Publications replayed to one subscriber on resume; a longer gap answers recovered:false.
  std::size_t max_recovery = 1000;
  std::size_t max_page = 1000;                          // GET /v1/channels/{name}/history limit
  duration idempotency_ttl = std::chrono::minutes(10);  // how long idempotency keys are kept
};

// The per-user offline inbox: publications to a user with "store": true are kept and delivered
// to the user's connections that subscribe to "$inbox", until acknowledged.
struct inbox_config {
  bool enabled = false;
  // size and ttl as for history (the pattern is fixed: every user's "$inbox:<user>").
  history_rule rule{"$inbox:*", 1000, std::chrono::hours(24 * 7)};
  std::string ack_action = "ack";  // {"action":"ack","channel":"$inbox","offset":N}
};

// Channels whose subscribers are tracked across nodes.
struct presence_rule {
  std::string pattern;
  bool events = false;  // tell subscribers of joins and leaves
};

// presence.*: which channels track their subscribers.
struct presence_config {
  std::vector<presence_rule> rules;
  std::string action = "presence";  // {"action":"presence","channel":...}; "" turns it off
  std::size_t max_members = 1000;   // entries returned by one presence query
};

// redis.tls.*: TLS to Redis (managed services require it).
struct redis_tls_config {
  bool enabled = false;  // also on with a rediss:// URL
  std::string ca_file;   // empty: the system's trust store
  std::string cert_file;
  std::string key_file;
  std::string server_name;  // empty: the URL's host
  bool verify = true;
};

// redis.sentinel.*: find the primary through Redis Sentinel, and follow its failovers.
struct redis_sentinel_config {
  std::vector<std::string> addresses;  // host:port of each Sentinel; empty: no Sentinel
  std::string master_name;             // the name the Sentinels monitor the primary under
  std::string username;                // the Sentinels' own credentials (requirepass / ACL)
  std::string password;
  duration timeout = std::chrono::milliseconds(500);  // to connect to and hear from one Sentinel
};

// redis.cluster.*: a Redis Cluster (7.0 or later): keys by slot, sharded pub/sub.
struct redis_cluster_config {
  std::vector<std::string> addresses;  // host:port of some of its nodes; empty: no cluster
};

// redis.*: the Redis backplane's server, timeouts and key names.
struct redis_config {
  std::string url = "redis://127.0.0.1:6379/0";
  std::string key_prefix = "herald";  // channels and keys are named <prefix>:...
  duration connect_timeout = std::chrono::seconds(2);
  duration command_timeout = std::chrono::seconds(2);
  duration reconnect_max_backoff = std::chrono::seconds(5);
  duration probe_interval = std::chrono::seconds(2);  // pub/sub liveness: publish to ourselves
  duration probe_timeout = std::chrono::seconds(3);
  duration directory_ttl = std::chrono::seconds(60);  // herald:conn:{id}, refreshed by the owner
  duration node_ttl = std::chrono::seconds(15);       // herald:node:{id}:alive
  duration remote_timeout = std::chrono::seconds(2);  // waiting for another node's answer
  bool required_for_readiness = true;
  std::size_t max_pending_commands = 100000;  // per connection; more are refused and counted
  // Publications of one history channel held while its gap is read back; past it, they are
  // handed over and the gap counted lost (herald_history_lost_total).
  std::size_t max_held_publications = 10000;
  redis_tls_config tls;
  redis_sentinel_config sentinel;
  redis_cluster_config cluster;
};

// One JWT verification key. HMAC algorithms take a secret (inline, from a file, or from an
// environment variable); RSA and EC algorithms take a PEM public key or certificate file.
struct jwt_key_config {
  std::string kid;  // empty: any token's kid
  std::string alg;  // HS256 | HS384 | HS512 | RS256 | RS384 | RS512 | ES256 | ES384
  std::string secret;
  std::string secret_file;
  std::string secret_env;
  std::string public_key_file;
};
// JWT authentication of the upgrade request. On when keys or a JWKS file are configured.
struct jwt_config {
  std::vector<jwt_key_config> keys;
  std::string jwks_file;
  // Where the token is looked for, in order: "header" (Authorization: Bearer), "query"
  // (?access_token=), "subprotocol" (Sec-WebSocket-Protocol: <prefix><token>, never echoed).
  std::vector<std::string> token_sources{"header", "query", "subprotocol"};
  std::string query_parameter = "access_token";
  std::string subprotocol_prefix = "bearer.";
  bool required = true;  // false: connections without a token are anonymous (a bad token is 401)
  std::string issuer;
  std::vector<std::string> audience;
  duration leeway = std::chrono::seconds(30);
  std::string user_claim = "sub";  // the claim naming the user
  bool close_on_expiry = false;    // close (4001) when exp passes on an open connection
  bool require_exp = true;         // a token without exp is refused (it would never expire)
  bool enabled() const { return !keys.empty() || !jwks_file.empty(); }
};
// A REQUEST authorizer (as API Gateway's Lambda REQUEST authorizer) called over HTTP before
// $connect. Its principalId and context reach every later event as requestContext.authorizer.
struct authorizer_config {
  std::string integration;  // an http integration; empty: no authorizer
  // route.request.header.<Name> | route.request.querystring.<name>; all must be present.
  std::vector<std::string> identity_sources{"route.request.header.Authorization"};
  duration cache_ttl = std::chrono::minutes(5);  // 0 disables the cache
  std::size_t cache_size = 10000;
};
// auth.*: JWT and REQUEST authorizer settings.
struct auth_config {
  jwt_config jwt;
  authorizer_config authorizer;
};
// SIGTERM: /readyz turns 503 at once; after accept_delay the listener stops and open
// connections are closed (1001) at random moments over close_window; the process exits when
// they are gone, or at drain_timeout (counted from the signal) at the latest.
struct shutdown_config {
  duration accept_delay = std::chrono::seconds(2);
  duration close_window = std::chrono::seconds(4);
  duration drain_timeout = std::chrono::seconds(8);
};

// Bounds on what Herald parses from outside, wherever it comes from.
struct limits_config {
  // Nesting of any JSON Herald did not produce itself (client frames, admin API bodies,
  // backend and authorizer answers, tokens, Redis payloads): deeper is refused.
  std::size_t json_max_depth = 64;
};

// sse.*: the fallback transport for networks that block WebSockets. Server-Sent Events carry
// what the server sends (GET sse.path), an HTTP POST to the same path what the client sends.
// Same routes, channels, limits and timeouts as a WebSocket connection.
struct sse_config {
  bool enabled = true;
  std::string path = "/sse";
  // A comment line on a quiet stream, so that proxies and load balancers do not time it out.
  duration keepalive_interval = std::chrono::seconds(15);
};

// The whole configuration: built once by load_config, immutable while serving.
struct config {
  std::string node_id;  // empty: generated at start-up
  endpoint listen{"127.0.0.1", 8080};
  unsigned threads = 0;  // 0: one worker per CPU core
  log_config log;
  tls_config tls;
  admin_config admin;
  http_config http;
  websocket_config websocket;
  sse_config sse;
  auth_config auth;
  shutdown_config shutdown;
  limits_config limits;
  backplane_kind backplane = backplane_kind::local;
  redis_config redis;
  channels_config channels;
  history_config history;
  inbox_config inbox;
  presence_config presence;
  routing_config routing;
  // Default: every message is echoed back (a two-way $default route to the built-in echo).
  std::vector<route_config> routes{{"$default", "echo", true}};
  std::vector<integration_config> integrations;
  // Where each key's value came from (a file, an environment variable, a flag), so an error
  // found later, when keys are checked together or against Herald's components, can still say
  // where to fix it. Not a setting.
  std::map<std::string, std::string> origins;
};

// The integration a route names: a configured one, or a built-in (`echo`). Null if unknown.
const integration_config* find_integration(const config& cfg, const std::string& name);

// A configuration problem. `key` names the offending key (dotted path) when there is one.
class config_error : public std::runtime_error {
 public:
  config_error(std::string key, std::string message);
  const std::string& key() const { return key_; }
  const std::string& detail() const { return detail_; }  // the message without the key

 private:
  std::string key_;
  std::string detail_;
};

// Where configuration comes from, applied in this order over the built-in defaults.
struct config_sources {
  std::string file_path;  // empty: no file
  std::string file_text;  // used instead of reading file_path when non-empty (tests)
  std::vector<std::pair<std::string, std::string>> environment;  // HERALD_* variables
  std::vector<std::pair<std::string, std::string>> flags;        // --key value pairs
};

// Builds and validates a configuration. Throws config_error naming the bad key and where its
// value came from. An unknown HERALD_* environment variable is an error too (with a suggestion
// when it looks like a typo), except the service links Kubernetes injects for a Service named
// "herald..." (HERALD_PORT, HERALD_SERVICE_HOST, HERALD_PORT_8080_TCP, ...).
config load_config(const config_sources& sources);

// Cross-key checks of shapes (files readable, ranges consistent). Called by load_config. The
// checks that need Herald's components (addresses, CIDR ranges, the selection expression, JWT
// keys, the Redis URL) are the server's: herald::check_components (herald/server/startup.hpp).
void validate(const config& cfg);

// `e` with where its key's value came from appended (" (in FILE|VARIABLE|--flag)"), unless
// it says so already or the value is a default.
config_error located(const config& cfg, const config_error& e);

// What --print-config writes instead of a secret (unless show_secrets); load_config refuses it
// with a hint, so a printed file is never started with a placeholder for a key.
inline constexpr std::string_view redacted_secret = "<redacted>";

// The configuration as JSON, every key present (for --print-config and docs), which load_config
// accepts as a file. Secrets are redacted_secret unless `show_secrets`.
std::string dump_config(const config& cfg, bool show_secrets = false);

// Description of one configuration key, for --help, documentation and tests.
struct option_info {
  std::string key;   // dotted path, e.g. "websocket.idle_timeout"
  std::string type;  // "duration", "size", "string", ...
  std::string env;   // HERALD_WEBSOCKET_IDLE_TIMEOUT
  std::string flag;  // --websocket.idle_timeout
  std::string description;
};
std::vector<option_info> describe_options();

// The key reference of docs/configuration.md (markdown tables by section), generated from the
// schema and the defaults so the documentation cannot drift from the code.
std::string config_reference_markdown();

// Collects HERALD_* variables from an environ-style array (excluding HERALD_CONFIG).
std::vector<std::pair<std::string, std::string>> herald_environment(char** envp);

// Text helpers exposed for tests.
duration parse_duration(std::string_view text);  // "250ms", "30s", "10m", "2h", "0"
std::size_t parse_size(std::string_view text);   // "4096", "128KiB", "1MiB", "1GiB"
endpoint parse_endpoint(std::string_view text);  // "127.0.0.1:8080", "[::1]:0", ":8080"
std::string format_duration(duration d);
std::string format_size(std::size_t bytes);

}  // namespace herald
