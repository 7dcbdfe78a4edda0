#include "redis/cluster_map.hpp"

#include <algorithm>

namespace herald::redis {
namespace {

std::string_view text(const redisReply* r) {
  if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)) return {};
  return {r->str, r->len};
}

bool is_array(const redisReply* r) {
  return r && r->type == REDIS_REPLY_ARRAY;
}

// A RESP2 map: a flat array of key, value, key, value.
const redisReply* field(const redisReply* map, std::string_view key) {
  if (!is_array(map)) return nullptr;
  for (std::size_t i = 0; i + 1 < map->elements; i += 2) {
    if (text(map->element[i]) == key) return map->element[i + 1];
  }
  return nullptr;
}

bool integer(const redisReply* r, long long& out) {
  if (!r) return false;
  if (r->type == REDIS_REPLY_INTEGER) {
    out = r->integer;
    return true;
  }
  return false;
}

}  // namespace

const cluster_node* cluster_shard::primary() const {
  for (const auto& n : nodes) {
    if (n.primary && n.usable()) return &n;
  }
  return nullptr;
}

std::optional<cluster_map> cluster_map::from_shards(const redisReply* reply,
                                                    std::string_view asked_host, bool tls,
                                                    std::string* error) {
  const auto fail = [&](std::string why) -> std::optional<cluster_map> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  if (!is_array(reply)) return fail("CLUSTER SHARDS did not answer with a list");
  cluster_map map;
  for (std::size_t s = 0; s < reply->elements; ++s) {
    const redisReply* shard = reply->element[s];
    const redisReply* slots = field(shard, "slots");
    const redisReply* nodes = field(shard, "nodes");
    if (!is_array(slots) || !is_array(nodes) || slots->elements % 2 != 0)
      return fail("a shard without slots and nodes");
    if (map.shards_.size() >= kNone) return fail("too many shards");
    cluster_shard out;
    for (std::size_t i = 0; i < slots->elements; i += 2) {
      long long first = 0, last = 0;
      if (!integer(slots->element[i], first) || !integer(slots->element[i + 1], last) ||
          first < 0 || last < first || last >= static_cast<long long>(cluster_slots))
        return fail("a slot range out of bounds");
      out.slots.emplace_back(static_cast<unsigned>(first), static_cast<unsigned>(last));
    }
    for (std::size_t n = 0; n < nodes->elements; ++n) {
      const redisReply* node = nodes->element[n];
      cluster_node c;
      c.id = std::string(text(field(node, "id")));
      // "endpoint": null or "" means the host we asked; "?" an unknown one (not dialled).
      const redisReply* endpoint = field(node, "endpoint");
      std::string_view host = text(endpoint);
      if (host == "?") continue;
      if (host.empty()) host = asked_host;
      c.host = std::string(host);
      long long port = 0;
      if (integer(field(node, tls ? "tls-port" : "port"), port) && port > 0 && port <= 65535)
        c.port = static_cast<int>(port);
      c.primary = text(field(node, "role")) == "master";
      c.health = std::string(text(field(node, "health")));
      out.nodes.push_back(std::move(c));
    }
    const auto index = static_cast<std::uint16_t>(map.shards_.size());
    for (const auto& [first, last] : out.slots) {
      for (unsigned slot = first; slot <= last; ++slot)
        map.owner_[slot] = index;
    }
    map.shards_.push_back(std::move(out));
  }
  return map;
}

const cluster_node* cluster_map::primary_for(unsigned slot) const {
  if (slot >= cluster_slots || owner_[slot] == kNone) return nullptr;
  return shards_[owner_[slot]].primary();
}

std::size_t cluster_map::covered() const {
  return static_cast<std::size_t>(
      std::count_if(owner_.begin(), owner_.end(), [](std::uint16_t o) { return o != kNone; }));
}

std::vector<const cluster_node*> cluster_map::primaries() const {
  std::vector<const cluster_node*> out;
  for (const auto& s : shards_) {
    if (const cluster_node* p = s.primary()) out.push_back(p);
  }
  return out;
}

}  // namespace herald::redis
