// A Redis Cluster's topology as CLUSTER SHARDS (Redis 7.0+) describes it: the shards, their
// nodes, and which primary serves each of the 16384 slots. Built from the reply, socket-free.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <hiredis/hiredis.h>

#include "herald/redis/cluster_keys.hpp"

namespace herald::redis {

struct cluster_node {
  std::string id;
  std::string host;  // the node's endpoint, or the host we asked when it names none
  int port = 0;      // the plain port, or the TLS port when the map was read for TLS
  bool primary = false;
  std::string health;  // "online", "failed", "loading"
  bool usable() const { return health == "online" && port > 0; }
  std::string address() const { return host + ":" + std::to_string(port); }
};

struct cluster_shard {
  std::vector<std::pair<unsigned, unsigned>> slots;  // inclusive ranges
  std::vector<cluster_node> nodes;
  // The shard's online primary, or nullptr (failing over, or not known yet).
  const cluster_node* primary() const;
};

class cluster_map {
 public:
  cluster_map() { owner_.fill(kNone); }  // no shards: every slot uncovered
  // From a CLUSTER SHARDS reply (RESP2: every map a flat key/value array, read by key name).
  // `asked_host`: the host the reply came from (a node with no endpoint is on it). `tls`: take
  // each node's "tls-port". nullopt, with `error` set, when the reply is not such a list.
  static std::optional<cluster_map> from_shards(const redisReply* reply,
                                                std::string_view asked_host, bool tls,
                                                std::string* error = nullptr);

  const std::vector<cluster_shard>& shards() const { return shards_; }
  // The online primary serving `slot`, or nullptr when no shard covers it or it has none.
  const cluster_node* primary_for(unsigned slot) const;
  const cluster_node* primary_for_key(std::string_view key) const {
    return primary_for(key_slot(key));
  }
  // Slots some shard covers (16384 on a healthy cluster).
  std::size_t covered() const;
  // The online primaries, one per shard that has one.
  std::vector<const cluster_node*> primaries() const;

 private:
  static constexpr std::uint16_t kNone = 0xffff;
  std::vector<cluster_shard> shards_;
  std::array<std::uint16_t, cluster_slots> owner_;  // index into shards_, or kNone
};

}  // namespace herald::redis
