// The Redis backplane: nodes share publications through Redis pub/sub and keep a directory of
// connections in Redis. All Redis work happens on one thread of its own.
//
// Redis names (documented in docs/redis.md): <prefix>:channel:{name}, <prefix>:user:{id},
// <prefix>:broadcast, <prefix>:node:{node} (requests to one node), <prefix>:control,
// <prefix>:conn:{id} (a hash with a TTL), <prefix>:node:{node}:alive (a key with a TTL).
#pragma once

#include <cstdint>
#include <memory>

#include "herald/common/log.hpp"
#include "herald/config/config.hpp"
#include "herald/delivery/backplane.hpp"
#include "herald/delivery/connection_registry.hpp"
#include "redis/payload.hpp"

namespace herald::redis {

// Builds the backplane; start() connects (in the background: Redis may be down).
std::unique_ptr<backplane> make_redis_backplane(const config& cfg, logger& log,
                                                connection_registry& registry, delivery deliver,
                                                worker_poster post);

}  // namespace herald::redis
