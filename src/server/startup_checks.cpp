#include <stdexcept>
#include <string>

#include "herald/auth/authenticator.hpp"
#include "herald/common/cidr.hpp"
#include "herald/redis/redis_endpoint.hpp"
#include "herald/routing/route_selector.hpp"
#include "herald/server/startup.hpp"
#include "redis/redis_connection.hpp"

namespace herald {
namespace {

void check(const config& cfg) {
  for (const auto& p : cfg.http.trusted_proxies) {
    if (!cidr::parse(p)) {
      throw config_error("http.trusted_proxies",
                         "\"" + p + "\" is not an address or CIDR range such as 10.0.0.0/8");
    }
  }
  try {
    route_selector selector(cfg.routing.selection_expression);
  } catch (const std::invalid_argument& e) {
    throw config_error("routing.selection_expression", e.what());
  }
  // Files readable, keys usable, algorithms fit the keys.
  if (cfg.auth.jwt.enabled()) load_jwt_keys(cfg.auth.jwt);
  if (cfg.backplane == backplane_kind::redis) {
    std::string why;
    const auto ep = redis::endpoint::parse(cfg.redis.url, &why);
    if (!ep) throw config_error("redis.url", why);
    if (!cfg.redis.sentinel.addresses.empty() && !ep->unix_path.empty()) {
      throw config_error("redis.url",
                         "with redis.sentinel the URL must be redis:// or rediss:// (its password, "
                         "database and scheme apply to the primary the Sentinels name)");
    }
    if (!cfg.redis.cluster.addresses.empty()) {
      if (!ep->unix_path.empty()) {
        throw config_error("redis.url",
                           "with redis.cluster the URL must be redis:// or rediss:// (its password "
                           "and scheme apply to every node of the cluster)");
      }
      if (ep->db != 0) {
        throw config_error("redis.url",
                           "a Redis Cluster has only database 0, and redis.url names " +
                               std::to_string(ep->db) + " (with redis.cluster.addresses)");
      }
    }
    if (ep->tls || cfg.redis.tls.enabled) {
      if (!ep->unix_path.empty())
        throw config_error("redis.tls.enabled",
                           "TLS needs a TCP address in redis.url, not unix://");
      redis::make_client_tls(cfg.redis.tls);  // the CA, certificate and key load
    }
  }
}

}  // namespace

void check_components(const config& cfg) {
  try {
    check(cfg);
  } catch (const config_error& e) {
    throw located(cfg, e);
  }
}

}  // namespace herald
