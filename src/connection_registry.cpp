#include "herald/connection_registry.hpp"

#include <chrono>

namespace herald {

system_time_ms now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

connection_registry::shard& connection_registry::shard_for(const connection_id& id) const {
  return shards_[std::hash<connection_id>{}(id) % shard_count];
}

void connection_registry::add(const std::shared_ptr<connection>& conn) {
  auto& s = shard_for(conn->id());
  std::lock_guard lock(s.mutex);
  if (s.map.emplace(conn->id(), conn).second) size_.fetch_add(1, std::memory_order_relaxed);
}

void connection_registry::remove(const connection_id& id) {
  auto& s = shard_for(id);
  std::lock_guard lock(s.mutex);
  if (s.map.erase(id) != 0) size_.fetch_sub(1, std::memory_order_relaxed);
}

std::shared_ptr<connection> connection_registry::find(const connection_id& id) const {
  auto& s = shard_for(id);
  std::lock_guard lock(s.mutex);
  const auto it = s.map.find(id);
  return it == s.map.end() ? nullptr : it->second.lock();
}

}  // namespace herald
