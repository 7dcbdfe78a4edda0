#include "redis/redis_topology.hpp"

#include <hiredis/hiredis.h>

namespace herald::redis {

bool redis_topology::publish(const std::string& channel, std::string payload,
                             std::function<void(reply_view)> done) {
  return command(channel, {sharded_ ? "SPUBLISH" : "PUBLISH", channel, std::move(payload)},
                 std::move(done));
}

void redis_topology::listeners(const std::string& channel, std::function<void(long long)> done) {
  const bool sent = command(
      channel, {"PUBSUB", sharded_ ? "SHARDNUMSUB" : "NUMSUB", channel}, [done](reply_view n) {
        const bool ok = n && n->type == REDIS_REPLY_ARRAY && n->elements == 2 &&
                        n->element[1]->type == REDIS_REPLY_INTEGER;
        done(ok ? n->element[1]->integer : -1);
      });
  if (!sent) done(-1);
}

std::unique_ptr<redis_topology> make_topology(const config& cfg, asio::io_context& ioc, logger& log,
                                              redis_topology::events ev) {
  const redis_config& rc = cfg.redis;
  redis_connection::options o;
  o.endpoint = *endpoint::parse(rc.url);
  o.connect_timeout = rc.connect_timeout;
  o.command_timeout = rc.command_timeout;
  o.max_pending = rc.max_pending_commands;
  if (o.endpoint.tls || rc.tls.enabled) {
    o.endpoint.tls = true;
    o.tls = make_client_tls(rc.tls);
    o.tls_server_name = rc.tls.server_name;
    o.tls_verify = rc.tls.verify;
  }
  if (const auto& s = rc.sentinel; !s.addresses.empty()) {
    for (const auto& a : s.addresses) {
      const auto ep = parse_endpoint(a);
      endpoint sentinel;
      sentinel.host = ep.host;
      sentinel.port = ep.port;
      sentinel.username = s.username;
      sentinel.password = s.password;
      sentinel.tls = o.endpoint.tls;
      o.sentinels.push_back(std::move(sentinel));
    }
    o.master_name = s.master_name;
    o.sentinel_timeout = s.timeout;
  }
  auto topology = rc.cluster.addresses.empty()
                      ? make_single_topology(rc, ioc, log, std::move(ev), o)
                      : make_cluster_topology(rc, ioc, log, std::move(ev), o);
  if (o.tls && !o.tls_verify) {
    log.warn("backplane.tls_unverified",
             {{"redis", topology->describe()},
              {"hint", "redis.tls.verify is off: anyone on the path can read and change traffic"}});
  }
  return topology;
}

}  // namespace herald::redis
