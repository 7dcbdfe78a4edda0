// Channel -> subscribers, socket-free. One index per worker thread, so it takes no locks.
// Subscribers are raw pointers: whoever subscribes must remove() before the subscriber dies.
// Iterating a channel's subscribers is a walk over a contiguous vector (the fan-out hot path);
// subscribe and unsubscribe are O(1).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace herald {

template <class T>
class basic_topic_index {
 public:
  struct change {
    bool changed = false;       // the subscription set changed
    bool channel_edge = false;  // the channel got its first subscriber / lost its last one
  };

  change subscribe(std::string_view channel, T* sub) {
    auto it = topics_.find(channel);
    const bool first = it == topics_.end();
    if (first) it = topics_.emplace(std::string(channel), topic{}).first;
    topic& t = it->second;
    if (!t.pos.emplace(sub, static_cast<std::uint32_t>(t.subs.size())).second) return {};
    t.subs.push_back(sub);
    by_sub_[sub].push_back(&*it);
    ++subscriptions_;
    return {true, first};
  }

  change unsubscribe(std::string_view channel, T* sub) {
    const auto it = topics_.find(channel);
    if (it == topics_.end() || !erase_from_topic(it->second, sub)) return {};
    auto& mine = by_sub_[sub];
    std::erase(mine, &*it);
    if (mine.empty()) by_sub_.erase(sub);
    --subscriptions_;
    if (!it->second.subs.empty()) return {true, false};
    topics_.erase(it);
    return {true, true};
  }

  // Removes `sub` from every channel. `on_last(channel)` runs for each channel left empty.
  void remove(T* sub, const std::function<void(const std::string&)>& on_last = {}) {
    const auto it = by_sub_.find(sub);
    if (it == by_sub_.end()) return;
    for (auto* node : it->second) {
      erase_from_topic(node->second, sub);
      --subscriptions_;
      if (node->second.subs.empty()) {
        if (on_last) on_last(node->first);
        topics_.erase(topics_.find(node->first));  // by iterator: the key lives in the node
      }
    }
    by_sub_.erase(it);
  }

  // The channel's subscribers; valid until the next change to this index.
  std::span<T* const> subscribers(std::string_view channel) const {
    const auto it = topics_.find(channel);
    if (it == topics_.end()) return {};
    return {it->second.subs.data(), it->second.subs.size()};
  }

  bool subscribed(std::string_view channel, const T* sub) const {
    const auto it = topics_.find(channel);
    return it != topics_.end() && it->second.pos.count(const_cast<T*>(sub)) != 0;
  }

  // The channels `sub` is in.
  std::vector<std::string> channels_of(const T* sub) const {
    std::vector<std::string> out;
    const auto it = by_sub_.find(const_cast<T*>(sub));
    if (it == by_sub_.end()) return out;
    for (const auto* node : it->second)
      out.push_back(node->first);
    return out;
  }

  std::size_t subscription_count(const T* sub) const {
    const auto it = by_sub_.find(const_cast<T*>(sub));
    return it == by_sub_.end() ? 0 : it->second.size();
  }
  std::size_t channel_count() const { return topics_.size(); }
  std::size_t subscription_count() const { return subscriptions_; }

  template <class F>
  void for_each_channel(F&& f) const {
    for (const auto& [name, t] : topics_)
      f(name, t.subs.size());
  }

 private:
  struct topic {
    std::vector<T*> subs;                       // iteration order for fan-out
    std::unordered_map<T*, std::uint32_t> pos;  // index in subs, for O(1) removal
  };
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using topic_map = std::unordered_map<std::string, topic, string_hash, std::equal_to<>>;

  static bool erase_from_topic(topic& t, T* sub) {
    const auto p = t.pos.find(sub);
    if (p == t.pos.end()) return false;
    const std::uint32_t i = p->second;
    t.pos.erase(p);
    if (i + 1 != t.subs.size()) {
      t.subs[i] = t.subs.back();  // swap-remove; order among subscribers does not matter
      t.pos[t.subs[i]] = i;
    }
    t.subs.pop_back();
    return true;
  }

  topic_map topics_;  // node-based: pointers to entries stay valid while the entry exists
  std::unordered_map<T*, std::vector<typename topic_map::value_type*>> by_sub_;
  std::size_t subscriptions_ = 0;
};

// Which workers have local subscribers of each channel, shared by all threads: a channel
// publication is posted only to those workers, so a channel with one subscriber wakes one
// worker instead of every one. Updated only when a worker's index gains a channel or loses it
// (the `channel_edge` of a change), read once per publication. Workers are bits of a 64-bit
// mask; with more than 64 workers every publication goes to every worker (`all`).
class channel_workers {
 public:
  explicit channel_workers(unsigned workers)
      : all_(workers >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << workers) - 1),
        tracked_(workers <= 64) {}

  void add(std::string_view channel, unsigned worker) {
    if (!tracked_) return;
    std::unique_lock lock(mutex_);
    auto it = masks_.find(channel);
    if (it == masks_.end()) it = masks_.emplace(std::string(channel), 0).first;
    it->second |= std::uint64_t{1} << worker;
  }

  void remove(std::string_view channel, unsigned worker) {
    if (!tracked_) return;
    std::unique_lock lock(mutex_);
    const auto it = masks_.find(channel);
    if (it == masks_.end()) return;
    it->second &= ~(std::uint64_t{1} << worker);
    if (it->second == 0) masks_.erase(it);
  }

  // Bit i set: worker i has subscribers of `channel`.
  std::uint64_t of(std::string_view channel) const {
    if (!tracked_) return all_;
    std::shared_lock lock(mutex_);
    const auto it = masks_.find(channel);
    return it == masks_.end() ? 0 : it->second;
  }

  std::uint64_t all() const { return all_; }

 private:
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  const std::uint64_t all_;
  const bool tracked_;
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, std::uint64_t, string_hash, std::equal_to<>> masks_;
};

}  // namespace herald
