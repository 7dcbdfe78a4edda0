#include <cstdlib>
#include <fstream>
#include <sstream>

#include "herald/auth/authenticator.hpp"
#include "herald/common/log.hpp"
#include "herald/common/text.hpp"
#include "herald/delivery/channel_policy.hpp"
#include "herald/delivery/connection_id.hpp"
#include "herald/integrations/integration.hpp"

namespace herald {
namespace {

using nlohmann::json;
using steady = std::chrono::steady_clock;

std::string read_file(const std::string& key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw config_error(key, "cannot read \"" + path + "\"");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string without_trailing_newlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
    s.pop_back();
  return s;
}

// "route.request.header.Authorization" -> the header's value; nothing when absent or empty.
std::optional<std::string> identity_value(std::string_view source, const connect_request& request) {
  constexpr std::string_view header = "route.request.header.";
  constexpr std::string_view query = "route.request.querystring.";
  std::string value;
  if (source.starts_with(header)) {
    value = std::string(find_header(request.headers, source.substr(header.size())));
  } else if (source.starts_with(query)) {
    const std::string_view name = source.substr(query.size());
    for (auto& [k, v] : query_pairs(request.target)) {
      if (k == name) value = std::move(v);
    }
  }
  if (value.empty()) return std::nullopt;
  return value;
}

}  // namespace

jwt::key_set load_jwt_keys(const jwt_config& cfg) {
  jwt::key_set keys;
  for (std::size_t i = 0; i < cfg.keys.size(); ++i) {
    const jwt_key_config& k = cfg.keys[i];
    const std::string key = "auth.jwt.keys[" + std::to_string(i) + "]";
    jwt::algorithm alg{};
    if (!jwt::parse_algorithm(k.alg, alg)) {
      throw config_error(key + ".alg",
                         "expected one of HS256 | HS384 | HS512 | RS256 | RS384 | "
                         "RS512 | ES256 | ES384, got \"" +
                             k.alg + "\"");
    }
    const int sources = !k.secret.empty() + !k.secret_file.empty() + !k.secret_env.empty() +
                        !k.public_key_file.empty();
    if (sources != 1) {
      throw config_error(key,
                         "needs exactly one of secret, secret_file, secret_env, "
                         "public_key_file");
    }
    try {
      if (!k.public_key_file.empty()) {
        keys.add_public_key_pem(k.kid, alg, read_file(key + ".public_key_file", k.public_key_file));
      } else {
        std::string secret = k.secret;
        if (!k.secret_file.empty())
          secret = without_trailing_newlines(read_file(key + ".secret_file", k.secret_file));
        if (!k.secret_env.empty()) {
          const char* v = std::getenv(k.secret_env.c_str());
          if (!v || !*v)
            throw config_error(key + ".secret_env", "$" + k.secret_env + " is not set");
          secret = v;
        }
        keys.add_secret(k.kid, alg, std::move(secret));
      }
    } catch (const std::invalid_argument& e) {
      throw config_error(key, e.what());
    }
  }
  if (!cfg.jwks_file.empty()) {
    try {
      keys.add_jwks(read_file("auth.jwt.jwks_file", cfg.jwks_file));
    } catch (const std::invalid_argument& e) {
      throw config_error("auth.jwt.jwks_file", e.what());
    }
  }
  return keys;
}

authenticator::authenticator(const config& cfg, logger& log, integration* authorizer)
    : cfg_(cfg), log_(log), authorizer_(authorizer), jwt_on_(cfg.auth.jwt.enabled()) {
  verify_options_.issuer = cfg.auth.jwt.issuer;
  verify_options_.audience = cfg.auth.jwt.audience;
  verify_options_.leeway = std::chrono::duration_cast<std::chrono::seconds>(cfg.auth.jwt.leeway);
  verify_options_.max_token_bytes = cfg.http.max_header_bytes;
  verify_options_.max_json_depth = cfg.limits.json_max_depth;
  verify_options_.require_exp = cfg.auth.jwt.require_exp;
  const std::string region =
      cfg.admin.sigv4.region.empty() ? std::string("local") : cfg.admin.sigv4.region;
  method_arn_ = "arn:aws:execute-api:" + region + ":000000000000:" + cfg.routing.api_id + "/" +
                cfg.routing.stage + "/$connect";
  if (jwt_on_) keys_ = std::make_shared<const jwt::key_set>(load_jwt_keys(cfg.auth.jwt));
}

authenticator::~authenticator() = default;

std::shared_ptr<const jwt::key_set> authenticator::keys() const {
  std::lock_guard lock(keys_mutex_);
  return keys_;
}

std::size_t authenticator::reload() {
  if (!jwt_on_) return 0;
  auto fresh = std::make_shared<const jwt::key_set>(load_jwt_keys(cfg_.auth.jwt));
  const std::size_t n = fresh->keys().size();
  std::lock_guard lock(keys_mutex_);
  keys_ = std::move(fresh);
  return n;
}

void authenticator::authenticate(const connection_info& info, const connect_request& request,
                                 std::vector<std::string>& offered,
                                 std::function<void(auth_outcome)> done) {
  auth_outcome out;
  if (jwt_on_) {
    check_jwt(info, request, offered, out);
    if (!out.accept) return done(std::move(out));
  }
  if (!authorizer_) return done(std::move(out));
  call_authorizer(info, request, std::move(out), std::move(done));
}

void authenticator::check_jwt(const connection_info& info, const connect_request& request,
                              std::vector<std::string>& offered, auth_outcome& out) {
  const jwt_config& c = cfg_.auth.jwt;
  const auto refuse = [&out](std::string reason) { out.refuse(401, std::move(reason)); };
  const auto token = find_token(c, request, offered);
  if (!token) {
    if (c.required) refuse("missing token");
    return;
  }
  const auto now = now_ms();
  const jwt::result r = jwt::verify(*token, *keys(), verify_options_, now / 1000);
  if (r.err != jwt::error::none) return refuse(std::string(jwt::describe(r.err)));
  std::string user;
  if (const auto u = r.claims.find(c.user_claim); u != r.claims.end()) {
    if (u->is_string()) user = u->get<std::string>();
    if (u->is_number_integer()) user = u->dump();
  }
  if (!user.empty() && !valid_user_id(user)) {
    return refuse("the " + c.user_claim + " claim is not a usable user id");
  }
  out.user_id = user;
  out.authorizer = std::make_shared<const string_pairs>(claims_context(r.claims, user));
  if (c.close_on_expiry) {
    if (const auto exp = r.claims.find("exp"); exp != r.claims.end() && exp->is_number()) {
      out.expires_at = static_cast<system_time_ms>(exp->get<double>() * 1000.0);
    }
  }
  log_.debug(
      "auth.jwt_verified",
      {{"connectionId", info.id.view()}, {"userId", user}, {"alg", jwt::algorithm_name(r.alg)}});
}

void authenticator::apply(const authorizer_answer& a, auth_outcome& out) {
  using verdict = authorizer_answer::verdict;
  switch (a.what) {
    case verdict::allow: {
      auto ctx = std::make_shared<string_pairs>();
      if (out.authorizer) *ctx = *out.authorizer;  // JWT claims first, the authorizer wins
      if (!a.principal_id.empty()) set_pair(*ctx, "principalId", a.principal_id);
      for (const auto& [k, v] : a.context)
        set_pair(*ctx, k, v);
      out.authorizer = std::move(ctx);
      if (out.user_id.empty() && valid_user_id(a.principal_id)) out.user_id = a.principal_id;
      return;
    }
    case verdict::deny:
      return out.refuse(403, "denied by the authorizer");
    case verdict::unauthorized:
      return out.refuse(401, "unauthorized by the authorizer");
    case verdict::error:
      return out.refuse(500, "authorizer failed");
  }
}

std::optional<authorizer_answer> authenticator::cached(const std::string& key) {
  std::lock_guard lock(cache_.mutex);
  const auto it = cache_.entries.find(key);
  if (it == cache_.entries.end()) return std::nullopt;
  if (it->second.expires <= steady::now()) {
    cache_.entries.erase(it);
    return std::nullopt;
  }
  return it->second.answer;
}

void authenticator::remember(const std::string& key, const authorizer_answer& a) {
  const std::size_t cap = cfg_.auth.authorizer.cache_size;
  std::lock_guard lock(cache_.mutex);
  auto& c = cache_;
  // Evict in insertion order (expired or not) until there is room.
  while (c.entries.size() >= cap && c.next < c.order.size())
    c.entries.erase(c.order[c.next++]);
  if (c.order.size() > 4 * cap || c.next >= c.order.size()) {
    // Keys expire and come back: rebuild the order from what is cached, keeping it bounded.
    std::vector<std::string> live;
    live.reserve(c.entries.size());
    for (const auto& kv : c.entries)
      live.push_back(kv.first);
    c.order = std::move(live);
    c.next = 0;
  }
  c.order.push_back(key);
  c.entries[key] = {steady::now() + cfg_.auth.authorizer.cache_ttl, a};
}

void authenticator::call_authorizer(const connection_info& info, const connect_request& request,
                                    auth_outcome out, std::function<void(auth_outcome)> done) {
  const auto& ac = cfg_.auth.authorizer;
  // Every identity source must be there, or 401 without asking (as API Gateway).
  std::string cache_key;
  for (const auto& source : ac.identity_sources) {
    const auto v = identity_value(source, request);
    if (!v) {
      out.refuse(401, "missing identity source " + source);
      return done(std::move(out));
    }
    cache_key += *v;
    cache_key += '\0';
  }
  const auto now = steady::now();
  if (ac.cache_ttl.count() > 0) {
    if (const auto hit = cached(cache_key)) {
      apply(*hit, out);
      return done(std::move(out));
    }
  }
  const std::string request_id = make_request_id();
  event_input in;
  in.type = event_type::connect;
  in.route_key = "$connect";
  in.request_id = request_id;
  in.request_time = now_ms();
  in.conn = &info;
  in.routing = &cfg_.routing;
  in.request = &request;
  in.method_arn = method_arn_;
  const std::string event = build_event(in);
  invocation inv;
  inv.type = event_type::connect;
  inv.route_key = "$connect";
  inv.request_id = request_id;
  inv.connection_id = info.id.view();
  inv.event = event;
  inv.worker = info.worker;
  const auto started = now;
  authorizer_->invoke(
      inv, [this, cache_key = std::move(cache_key), out = std::move(out), done = std::move(done),
            id = info.id, started, request_id](integration_result r) mutable {
        authorizer_answer a;
        if (!r.ok) {
          a.error = r.error;
        } else {
          a = parse_authorizer_answer(r.status, r.body, method_arn_, cfg_.limits.json_max_depth);
        }
        const auto elapsed =
            std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started);
        if (a.what == authorizer_answer::verdict::error) {
          log_.warn("auth.authorizer_failed", {{"connectionId", id.view()},
                                               {"requestId", request_id},
                                               {"error", a.error},
                                               {"latency_ms", elapsed.count()}});
        } else if (cfg_.auth.authorizer.cache_ttl.count() > 0) {
          remember(cache_key, a);  // Allow and Deny are cached; failures are asked again
        }
        apply(a, out);
        done(std::move(out));
      });
}

}  // namespace herald
