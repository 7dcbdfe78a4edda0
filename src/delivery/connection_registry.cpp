#include "herald/delivery/connection_registry.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace herald {

void set_pair(string_pairs& pairs, std::string_view key, std::string value) {
  for (auto& kv : pairs) {
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  }
  pairs.emplace_back(std::string(key), std::move(value));
}

bool valid_user_id(std::string_view id) {
  if (id.empty() || id.size() > 256) return false;
  for (char c : id) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u == 0x7f) return false;  // printable, no spaces
  }
  return true;
}

connection_info& connection_info::operator=(const connection_info& other) {
  if (this == &other) return *this;
  id = other.id;
  connected_at = other.connected_at;
  authorizer = other.authorizer;
  expires_at = other.expires_at;
  worker = other.worker;
  end_ = other.end_;
  const std::uint32_t size = end_[fields - 1];
  text_ = size == 0 ? nullptr : std::make_unique<char[]>(size);
  if (size != 0) std::memcpy(text_.get(), other.text_.get(), size);
  return *this;
}

connection_info& connection_info::operator=(connection_info&& other) noexcept {
  if (this == &other) return *this;
  id = other.id;
  connected_at = other.connected_at;
  authorizer = std::move(other.authorizer);
  expires_at = other.expires_at;
  worker = other.worker;
  end_ = other.end_;
  text_ = std::move(other.text_);
  other.end_ = {};  // a moved-from info holds empty texts
  return *this;
}

void connection_info::set(field f, std::string_view value) {
  const std::string_view old = text(f);
  const std::uint32_t total = end_[fields - 1];
  const auto next_total = static_cast<std::uint32_t>(total - old.size() + value.size());
  std::unique_ptr<char[]> next = next_total == 0 ? nullptr : std::make_unique<char[]>(next_total);
  const std::uint32_t begin = f == 0 ? 0 : end_[f - 1];
  if (next) {
    const auto copy = [](char* to, const char* from, std::size_t n) {
      if (n != 0) std::memcpy(to, from, n);
    };
    copy(next.get(), text_.get(), begin);
    copy(next.get() + begin, value.data(), value.size());
    copy(next.get() + begin + value.size(), text_.get() + end_[f], total - end_[f]);
  }
  const auto grow = static_cast<std::int64_t>(value.size()) - static_cast<std::int64_t>(old.size());
  for (std::size_t i = f; i < fields; ++i)
    end_[i] = static_cast<std::uint32_t>(end_[i] + grow);
  text_ = std::move(next);
}

system_time_ms now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

namespace {

template <class Key>
std::size_t shard_of(const Key& key, std::size_t count) {
  return std::hash<Key>{}(key) % count;
}

}  // namespace

void connection_registry::add(const std::shared_ptr<connection>& conn) {
  {
    auto& s = ids_[shard_of(conn->id(), shard_count)];
    std::lock_guard lock(s.mutex);
    if (!s.map.emplace(conn->id(), conn).second) return;
  }
  size_.fetch_add(1, std::memory_order_relaxed);
  const std::string user(conn->info().user_id());
  if (user.empty()) return;
  auto& u = users_[shard_of(user, shard_count)];
  std::lock_guard lock(u.mutex);
  u.map[user].push_back(conn);
}

void connection_registry::remove(const connection& conn) {
  {
    auto& s = ids_[shard_of(conn.id(), shard_count)];
    std::lock_guard lock(s.mutex);
    if (s.map.erase(conn.id()) == 0) return;
  }
  size_.fetch_sub(1, std::memory_order_relaxed);
  const std::string user(conn.info().user_id());
  if (user.empty()) return;
  auto& u = users_[shard_of(user, shard_count)];
  std::lock_guard lock(u.mutex);
  const auto it = u.map.find(user);
  if (it == u.map.end()) return;
  auto& list = it->second;
  // Remove this connection (and any entry whose connection is already gone).
  std::erase_if(list, [&](const std::weak_ptr<connection>& w) {
    const auto c = w.lock();
    return !c || c.get() == &conn;
  });
  if (list.empty()) u.map.erase(it);
}

std::shared_ptr<connection> connection_registry::find(const connection_id& id) const {
  auto& s = ids_[shard_of(id, shard_count)];
  std::lock_guard lock(s.mutex);
  const auto it = s.map.find(id);
  return it == s.map.end() ? nullptr : it->second.lock();
}

std::vector<std::shared_ptr<connection>> connection_registry::find_user(
    const std::string& user_id) const {
  std::vector<std::shared_ptr<connection>> out;
  auto& u = users_[shard_of(user_id, shard_count)];
  std::lock_guard lock(u.mutex);
  const auto it = u.map.find(user_id);
  if (it == u.map.end()) return out;
  out.reserve(it->second.size());
  for (const auto& w : it->second) {
    if (auto c = w.lock()) out.push_back(std::move(c));
  }
  return out;
}

std::vector<std::shared_ptr<connection>> connection_registry::some(std::size_t limit) const {
  std::vector<std::shared_ptr<connection>> out;
  for (auto& s : ids_) {
    std::lock_guard lock(s.mutex);
    for (const auto& [id, weak] : s.map) {
      if (out.size() >= limit) return out;
      if (auto c = weak.lock()) out.push_back(std::move(c));
    }
  }
  return out;
}

std::size_t connection_registry::user_count() const {
  std::size_t n = 0;
  for (auto& u : users_) {
    std::lock_guard lock(u.mutex);
    n += u.map.size();
  }
  return n;
}

}  // namespace herald
