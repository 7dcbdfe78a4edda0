// validate(): the checks of a configuration that look at several keys together (ranges that
// must agree, files that must be readable, routes that must name integrations). Shapes of single
// values are checked where they are read (config_schema.cpp).
#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include "config/config_schema.hpp"
#include "herald/config/config.hpp"

namespace herald {

namespace {

// An IPv4 or IPv6 address in text (what a listener binds), not a host name.
bool ip_literal(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool readable(const std::string& path) {
  std::ifstream in(path);
  return static_cast<bool>(in);
}

bool valid_node_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '_' || c == '-';
  });
}

bool valid_token(const std::string& s) {
  // RFC 7230 token characters, the grammar of a subprotocol name.
  static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || extra.find(static_cast<char>(c)) != std::string_view::npos;
  });
}

}  // namespace

namespace {

void validate_auth(const config& cfg) {
  const jwt_config& j = cfg.auth.jwt;
  if (j.enabled()) {
    if (j.token_sources.empty())
      throw config_error("auth.jwt.token_sources", "must name at least one source");
    for (const auto& s : j.token_sources) {
      if (s != "header" && s != "query" && s != "subprotocol") {
        throw config_error("auth.jwt.token_sources",
                           "expected header, query or subprotocol, got \"" + s + "\"");
      }
      if (s == "query" && j.query_parameter.empty())
        throw config_error("auth.jwt.query_parameter", "required when token_sources has query");
      if (s == "subprotocol" && j.subprotocol_prefix.empty()) {
        throw config_error("auth.jwt.subprotocol_prefix",
                           "required when token_sources has subprotocol");
      }
    }
    if (j.user_claim.empty()) throw config_error("auth.jwt.user_claim", "must not be empty");
  } else if (j.close_on_expiry) {
    throw config_error("auth.jwt.close_on_expiry", "needs auth.jwt.keys or auth.jwt.jwks_file");
  }
  const authorizer_config& a = cfg.auth.authorizer;
  if (!a.integration.empty()) {
    const integration_config* ic = find_integration(cfg, a.integration);
    if (!ic || ic->kind != integration_kind::http) {
      throw config_error(
          "auth.authorizer.integration",
          "\"" + a.integration + "\" must be an http integration under integrations");
    }
    if (a.identity_sources.empty())
      throw config_error("auth.authorizer.identity_sources", "must name at least one source");
    for (const auto& s : a.identity_sources) {
      const bool header = s.starts_with("route.request.header.") && s.size() > 21;
      const bool query = s.starts_with("route.request.querystring.") && s.size() > 26;
      if (!header && !query) {
        throw config_error("auth.authorizer.identity_sources",
                           "expected route.request.header.<Name> or "
                           "route.request.querystring.<name>, got \"" +
                               s + "\"");
      }
    }
  }
}

}  // namespace

void validate(const config& cfg) {
  // Listeners bind addresses; a host name (or a malformed address) would fail only at start-up.
  const auto address = [](const char* key, const endpoint& ep) {
    if (!ip_literal(ep.host)) {
      throw config_error(key, "\"" + ep.host +
                                  "\" is not an IP address (Herald listens on addresses, not "
                                  "names: 0.0.0.0 or [::] for every interface, 127.0.0.1 for "
                                  "this machine only)");
    }
  };
  address("listen", cfg.listen);
  if (cfg.admin.enabled) address("admin.listen", cfg.admin.listen);
  if (!cfg.node_id.empty() && !valid_node_id(cfg.node_id)) {
    throw config_error("node_id",
                       "must be 1-64 characters of A-Z a-z 0-9 . _ -, got \"" + cfg.node_id + "\"");
  }
  if (const auto& s = cfg.shutdown; s.accept_delay + s.close_window > s.drain_timeout) {
    throw config_error("shutdown.drain_timeout",
                       "must be at least shutdown.accept_delay + shutdown.close_window (" +
                           std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              s.accept_delay + s.close_window)
                                              .count()) +
                           " ms), or connections are cut before their close is sent");
  }
  if (!cfg.http.static_dir.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_directory(cfg.http.static_dir, ec)) {
      throw config_error("http.static_dir", "\"" + cfg.http.static_dir + "\" is not a directory");
    }
  }
  if (cfg.tls.mode != tls_mode::off) {
    if (cfg.tls.cert_file.empty())
      throw config_error("tls.cert_file", "required when tls.mode is not off");
    if (cfg.tls.key_file.empty())
      throw config_error("tls.key_file", "required when tls.mode is not off");
    if (!readable(cfg.tls.cert_file)) {
      throw config_error("tls.cert_file", "cannot read \"" + cfg.tls.cert_file + "\"");
    }
    if (!readable(cfg.tls.key_file)) {
      throw config_error("tls.key_file", "cannot read \"" + cfg.tls.key_file + "\"");
    }
  }
  for (const auto& k : cfg.admin.api_keys) {
    if (k.size() < 16)
      throw config_error("admin.api_keys", "keys must be at least 16 characters long");
  }
  if (cfg.admin.sigv4.access_key_id.empty() != cfg.admin.sigv4.secret_access_key.empty()) {
    throw config_error("admin.sigv4.secret_access_key",
                       "admin.sigv4.access_key_id and admin.sigv4.secret_access_key go together");
  }
  if (cfg.admin.client_listener_connections && cfg.admin.sigv4.access_key_id.empty()) {
    throw config_error("admin.client_listener_connections",
                       "serves @connections on the client listener with SigV4 only: set "
                       "admin.sigv4.access_key_id and admin.sigv4.secret_access_key");
  }
  const bool loopback = cfg.admin.listen.host == "::1" || cfg.admin.listen.host.starts_with("127.");
  if (cfg.admin.enabled && !loopback && cfg.admin.api_keys.empty() &&
      cfg.admin.sigv4.access_key_id.empty() && !cfg.admin.allow_unauthenticated) {
    throw config_error("admin.listen",
                       "the admin API on " + cfg.admin.listen.to_string() +
                           " would be open to anyone who can reach it: set admin.api_keys or "
                           "admin.sigv4, or admin.allow_unauthenticated on a private network");
  }
  if (cfg.admin.enabled && cfg.admin.listen == cfg.listen && cfg.listen.port != 0) {
    throw config_error("admin.listen", "must differ from listen (" + cfg.listen.to_string() + ")");
  }
  const auto& ws = cfg.websocket;
  if (ws.path.empty() || ws.path.front() != '/') {
    throw config_error("websocket.path", "must start with '/', got \"" + ws.path + "\"");
  }
  if (cfg.sse.enabled) {
    if (cfg.sse.path.empty() || cfg.sse.path.front() != '/') {
      throw config_error("sse.path", "must start with '/', got \"" + cfg.sse.path + "\"");
    }
    if (cfg.sse.path == ws.path) {
      throw config_error("sse.path", "must differ from websocket.path (" + ws.path + ")");
    }
  }
  if (ws.max_frame_bytes > ws.max_message_bytes) {
    throw config_error("websocket.max_frame_bytes",
                       "must not exceed websocket.max_message_bytes (" +
                           format_size(ws.max_message_bytes) + "), got " +
                           format_size(ws.max_frame_bytes));
  }
  if (ws.send_queue.max_bytes < ws.max_message_bytes) {
    throw config_error("websocket.send_queue.max_bytes",
                       "must be at least websocket.max_message_bytes (" +
                           format_size(ws.max_message_bytes) + ") so one message always fits");
  }
  for (const auto& p : ws.subprotocols) {
    if (!valid_token(p)) {
      throw config_error("websocket.subprotocols",
                         "\"" + p + "\" is not a valid subprotocol token");
    }
  }
  std::vector<std::string> names{"echo"};
  for (const auto& ic : cfg.integrations)
    names.push_back(ic.name);
  for (const auto& r : cfg.routes) {
    if (!find_integration(cfg, r.integration)) {
      std::string message = "unknown integration \"" + r.integration + "\"";
      const std::string hint = detail::suggest_key(r.integration, names);
      if (!hint.empty()) message += "; did you mean \"" + hint + "\"?";
      throw config_error("routes." + r.key + ".integration",
                         message + " (define it under integrations)");
    }
  }
  for (std::size_t i = 0; i < cfg.channels.rules.size(); ++i) {
    const auto& rule = cfg.channels.rules[i];
    if (rule.access == channel_access::integration && !find_integration(cfg, rule.integration)) {
      throw config_error(
          "channels.rules[" + std::to_string(i) + "].integration",
          "unknown integration \"" + rule.integration + "\" (define it under integrations)");
    }
  }
  validate_auth(cfg);
  const std::pair<const std::string*, const char*> actions[] = {
      {&cfg.channels.subscribe_action, "channels.subscribe_action"},
      {&cfg.channels.unsubscribe_action, "channels.unsubscribe_action"},
      {&cfg.channels.publish_action, "channels.publish_action"},
      {&cfg.inbox.ack_action, "inbox.ack_action"},
      {&cfg.presence.action, "presence.action"}};
  for (const auto& [action, key] : actions) {
    if (action->empty()) continue;
    if (action->front() == '$') throw config_error(key, "must not start with '$'");
    for (const auto& [other, other_key] : actions) {
      if (other != action && *other == *action && std::string_view(other_key) < key) {
        throw config_error(
            key, "\"" + *action + "\" is already the route key of " + std::string(other_key));
      }
    }
    for (const auto& r : cfg.routes) {
      if (r.key == *action) {
        throw config_error("routes." + r.key,
                           "this route key is the built-in channel action; set " +
                               std::string(key) + " to another key (or \"\") to route it yourself");
      }
    }
  }
  for (const auto& ic : cfg.integrations) {
    if (ic.kind == integration_kind::redis_stream && cfg.backplane != backplane_kind::redis) {
      throw config_error("integrations." + ic.name + ".type",
                         "redis_stream needs Redis: set backplane to redis (and redis.url)");
    }
  }
  if (cfg.backplane == backplane_kind::redis) {
    if (cfg.redis.key_prefix.empty() ||
        cfg.redis.key_prefix.find_first_of(" {}") != std::string::npos) {
      throw config_error("redis.key_prefix", "must be non-empty, without spaces or braces");
    }
    if (cfg.redis.directory_ttl < cfg.redis.node_ttl) {
      throw config_error("redis.directory_ttl", "must be at least redis.node_ttl (" +
                                                    format_duration(cfg.redis.node_ttl) + ")");
    }
  }
  if (const auto& s = cfg.redis.sentinel; !s.addresses.empty()) {
    if (s.master_name.empty())
      throw config_error("redis.sentinel.master_name", "required with redis.sentinel.addresses");
    for (const auto& a : s.addresses) {
      try {
        if (parse_endpoint(a).port == 0) throw std::invalid_argument("port must not be 0");
      } catch (const std::invalid_argument& e) {
        throw config_error("redis.sentinel.addresses", "\"" + a + "\": " + e.what());
      }
    }
  }
  if (const auto& c = cfg.redis.cluster; !c.addresses.empty()) {
    if (!cfg.redis.sentinel.addresses.empty()) {
      throw config_error("redis.cluster.addresses",
                         "redis.cluster.addresses and redis.sentinel.addresses contradict each "
                         "other: a Redis Cluster fails over by itself, without Sentinel; set one");
    }
    for (const auto& a : c.addresses) {
      try {
        if (parse_endpoint(a).port == 0) throw std::invalid_argument("port must not be 0");
      } catch (const std::invalid_argument& e) {
        throw config_error("redis.cluster.addresses", "\"" + a + "\": " + e.what());
      }
    }
  }
  if (const auto& t = cfg.redis.tls; t.cert_file.empty() != t.key_file.empty()) {
    throw config_error(t.cert_file.empty() ? "redis.tls.cert_file" : "redis.tls.key_file",
                       "redis.tls.cert_file and redis.tls.key_file go together");
  }
  for (const auto& [key, file] : {std::pair{"redis.tls.ca_file", cfg.redis.tls.ca_file},
                                  std::pair{"redis.tls.cert_file", cfg.redis.tls.cert_file},
                                  std::pair{"redis.tls.key_file", cfg.redis.tls.key_file}}) {
    if (!file.empty() && !readable(file)) throw config_error(key, "cannot read \"" + file + "\"");
  }
  if (cfg.http.max_url_bytes >= cfg.http.max_header_bytes) {
    throw config_error("http.max_url_bytes", "must be smaller than http.max_header_bytes (" +
                                                 format_size(cfg.http.max_header_bytes) + ")");
  }
}

}  // namespace herald
