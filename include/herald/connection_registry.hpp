// Every open connection on this node, by id. Thread-safe (sharded locks) and never owns a
// connection: it holds weak references that sessions add after the upgrade and remove when
// they finish.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "herald/connection.hpp"

namespace herald {

class connection_registry {
 public:
  void add(const std::shared_ptr<connection>& conn);
  void remove(const connection_id& id);
  // The connection if it is still open on this node.
  std::shared_ptr<connection> find(const connection_id& id) const;
  std::size_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t shard_count = 16;
  struct shard {
    mutable std::mutex mutex;
    std::unordered_map<connection_id, std::weak_ptr<connection>> map;
  };
  shard& shard_for(const connection_id& id) const;

  mutable std::array<shard, shard_count> shards_;
  std::atomic<std::size_t> size_{0};
};

}  // namespace herald
