// The names Herald gives things in Redis, under one key prefix, for one topology. Socket-free.
//
// On a Redis Cluster, the names that belong to one Herald channel (its pub/sub channel, history
// stream, metadata, idempotency keys, presence) carry the channel's name as a hash tag
// ("herald:history:{news}"), so they live in one slot: the function that stores and publishes
// touches them together, and SPUBLISH from inside it reaches the same shard. A node's channel
// and liveness key share the node's id as their tag, and a user's channel the user's id. On a
// single server (or behind Sentinel) the names stay as they always were ("herald:history:news"):
// backends that PUBLISH to them keep working.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace herald::redis {

struct redis_names {
  std::string prefix;  // "herald:"
  bool cluster = false;

  std::string tagged(std::string_view name) const {
    return cluster ? "{" + std::string(name) + "}" : std::string(name);
  }
  std::string channel(std::string_view name) const { return prefix + "channel:" + tagged(name); }
  std::string user(std::string_view id) const { return prefix + "user:" + tagged(id); }
  std::string broadcast() const { return prefix + "broadcast"; }
  std::string control() const { return prefix + "control"; }
  std::string node(std::string_view id) const { return prefix + "node:" + tagged(id); }
  std::string alive(std::string_view id) const { return node(id) + ":alive"; }
  std::string nodes() const { return prefix + "nodes"; }
  std::string conn(std::string_view id) const { return prefix + "conn:" + std::string(id); }
  std::string presence(std::string_view channel) const {
    return prefix + "presence:" + tagged(channel);
  }
  std::string history(std::string_view channel) const {
    return prefix + "history:" + tagged(channel);
  }
  std::string history_meta(std::string_view channel) const {
    return prefix + "history-meta:" + tagged(channel);
  }
  std::string idempotency(std::string_view channel, std::string_view key) const {
    return prefix + "idem:" + tagged(channel) + ":" + std::string(key);
  }

  // The Herald channel a Redis channel made by channel() stands for ("news" from
  // "herald:channel:{news}"), or nothing for another name.
  std::optional<std::string> channel_of(std::string_view redis_channel) const {
    return inner(redis_channel, "channel:");
  }
  std::optional<std::string> user_of(std::string_view redis_channel) const {
    return inner(redis_channel, "user:");
  }

 private:
  std::optional<std::string> inner(std::string_view name, std::string_view kind) const {
    if (!name.starts_with(prefix) || name.substr(prefix.size()).substr(0, kind.size()) != kind)
      return std::nullopt;
    name.remove_prefix(prefix.size() + kind.size());
    if (!cluster) return std::string(name);
    if (name.size() < 2 || name.front() != '{' || name.back() != '}') return std::nullopt;
    return std::string(name.substr(1, name.size() - 2));
  }
};

}  // namespace herald::redis
