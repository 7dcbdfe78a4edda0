#include "herald/delivery/history.hpp"

#include <algorithm>
#include <random>

#include "herald/delivery/channel_policy.hpp"

namespace herald {

bool history_continuous(const history_page& page, std::string_view client_epoch,
                        std::size_t limit) {
  if (!page.ok) return false;
  if (!client_epoch.empty() && client_epoch != page.epoch) return false;
  if (page.from > page.top) return false;  // ahead of the history: not the same history
  if (page.from == page.top) return true;
  if (page.entries.empty() || page.entries.front().offset != page.from + 1) return false;
  return page.entries.size() <= limit && page.entries.back().offset == page.top;
}

memory_history::memory_history(const config& cfg)
    : cfg_(cfg), seed_(std::random_device{}() | (std::uint64_t{std::random_device{}()} << 32)) {}

std::string memory_history::new_epoch() {
  // Unique per process start (random) and per reset (counter).
  static constexpr char hex[] = "0123456789abcdef";
  std::uint64_t v = seed_ ^ (++epochs_ * 0x9e3779b97f4a7c15ULL);
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4)
    out[static_cast<std::size_t>(i)] = hex[v & 15];
  return out;
}

memory_history::stream* memory_history::live(std::string_view channel, const history_rule& rule,
                                             system_time_ms now, bool create) {
  auto it = streams_.find(std::string(channel));
  if (it != streams_.end() && now - it->second.last_publish > rule.ttl.count()) {
    streams_.erase(it);  // expired as a whole, as the Redis keys do
    it = streams_.end();
  }
  if (it == streams_.end()) {
    if (!create) return nullptr;
    it = streams_.emplace(std::string(channel), stream{}).first;
    it->second.epoch = new_epoch();
    it->second.last_publish = now;
  }
  return &it->second;
}

stored_result memory_history::append(std::string_view channel, const history_rule& rule,
                                     const std::string& data_json, const std::string& id,
                                     const std::string& idempotency_key, system_time_ms now) {
  stream& s = *live(channel, rule, now, true);
  stored_result r;
  r.ok = true;
  r.epoch = s.epoch;
  if (!idempotency_key.empty()) {
    std::erase_if(s.keys, [now](const auto& kv) { return kv.second.second <= now; });
    if (const auto k = s.keys.find(idempotency_key); k != s.keys.end()) {
      r.offset = k->second.first;
      r.duplicate = true;
      return r;
    }
  }
  r.offset = ++s.top;
  s.last_publish = now;
  s.entries.push_back({r.offset, now, id, data_json});
  while (s.entries.size() > rule.size)
    s.entries.pop_front();
  if (!idempotency_key.empty())
    s.keys[idempotency_key] = {r.offset, now + cfg_.history.idempotency_ttl.count()};
  return r;
}

history_page memory_history::read(const history_query& q, const history_rule& rule,
                                  system_time_ms now) {
  history_page page;
  page.ok = true;
  stream* s = live(q.channel, rule, now, false);
  if (!s) return page;
  page.epoch = s->epoch;
  page.top = s->top;
  page.acked = s->acked;
  if (!q.since && !q.from_ack) return page;
  page.from = q.from_ack ? s->acked : *q.since;
  const system_time_ms oldest = now - rule.ttl.count();
  auto it =
      std::upper_bound(s->entries.begin(), s->entries.end(), page.from,
                       [](std::uint64_t off, const history_entry& e) { return off < e.offset; });
  for (; it != s->entries.end() && page.entries.size() <= q.limit; ++it) {
    if (it->time >= oldest) page.entries.push_back(*it);
  }
  return page;
}

std::uint64_t memory_history::ack(std::string_view channel, std::uint64_t offset) {
  const auto it = streams_.find(std::string(channel));
  if (it == streams_.end()) return 0;
  stream& s = it->second;
  s.acked = std::max(s.acked, std::min(offset, s.top));
  return s.acked;
}

std::size_t memory_history::channels() const {
  return streams_.size();
}

std::string glob_to_lua_pattern(std::string_view glob) {
  std::string out = "^";
  for (char c : glob) {
    switch (c) {
      case '*':
        out += ".*";
        break;
      case '?':
        out += '.';
        break;
      case '^':
      case '$':
      case '(':
      case ')':
      case '%':
      case '.':
      case '[':
      case ']':
      case '+':
      case '-':
        out += '%';
        out += c;
        break;
      default:
        out += c;
    }
  }
  out += '$';
  return out;
}

}  // namespace herald
