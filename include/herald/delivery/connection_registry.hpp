// Every open connection on this node, by id and by user. Thread-safe (sharded locks, touched on
// connect, disconnect and API lookups, never per message) and never owns a connection: it holds
// weak references that sessions add after the upgrade and remove when they finish.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "herald/delivery/connection.hpp"

namespace herald {

// Every open connection of this node by id and by user (sharded locks; weak references).
class connection_registry {
 public:
  void add(const std::shared_ptr<connection>& conn);
  void remove(const connection& conn);
  // The connection if it is still open on this node.
  std::shared_ptr<connection> find(const connection_id& id) const;
  // The open connections of a user on this node (any order).
  std::vector<std::shared_ptr<connection>> find_user(const std::string& user_id) const;
  // Every open connection (for the directory refresh).
  std::vector<std::shared_ptr<connection>> all() const {
    return some(static_cast<std::size_t>(-1));
  }
  // Up to `limit` open connections (for listings); size() says how many there are in all.
  std::vector<std::shared_ptr<connection>> some(std::size_t limit) const;
  std::size_t size() const { return size_.load(std::memory_order_relaxed); }
  std::size_t user_count() const;

 private:
  static constexpr std::size_t shard_count = 16;
  struct id_shard {
    mutable std::mutex mutex;
    std::unordered_map<connection_id, std::weak_ptr<connection>> map;
  };
  struct user_shard {
    mutable std::mutex mutex;
    // Per user: that user's connections. Small vectors: users rarely hold many.
    std::unordered_map<std::string, std::vector<std::weak_ptr<connection>>> map;
  };

  mutable std::array<id_shard, shard_count> ids_;
  mutable std::array<user_shard, shard_count> users_;
  std::atomic<std::size_t> size_{0};
};

}  // namespace herald
