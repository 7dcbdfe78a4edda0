#include "herald/protocol/sse.hpp"

#include <charconv>

#include "herald/routing/event.hpp"

namespace herald::protocol::sse {

void append_event(std::string& out, std::string_view event, std::string_view id,
                  std::string_view data) {
  if (!event.empty()) out.append("event: ").append(event).append("\n");
  if (!id.empty()) out.append("id: ").append(id).append("\n");
  for (;;) {
    const auto nl = data.find_first_of("\r\n");
    out.append("data: ").append(data.substr(0, nl)).append("\n");
    if (nl == std::string_view::npos) break;
    const std::size_t skip = data.compare(nl, 2, "\r\n") == 0 ? 2 : 1;
    data.remove_prefix(nl + skip);
  }
  out.append("\n");
}

std::string encode_positions(const positions& p) {
  std::string id;
  for (const auto& [channel, pos] : p) {
    if (!id.empty()) id += ',';
    id += channel;
    id += '~';
    id += pos.epoch;
    id += '~';
    id += std::to_string(pos.offset);
  }
  return id;
}

positions decode_positions(std::string_view id, std::size_t max_channels) {
  positions out;
  while (!id.empty() && out.size() < max_channels) {
    const auto comma = id.find(',');
    const std::string_view item = id.substr(0, comma);
    id = comma == std::string_view::npos ? std::string_view() : id.substr(comma + 1);
    // channel~epoch~offset: the offset after the last ~, the epoch before it.
    const auto b = item.rfind('~');
    if (b == std::string_view::npos || b == 0) continue;
    const auto a = item.rfind('~', b - 1);
    if (a == std::string_view::npos || a == 0) continue;
    const auto digits = item.substr(b + 1);
    std::uint64_t offset = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), offset);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) continue;
    out[std::string(item.substr(0, a))] = {std::string(item.substr(a + 1, b - a - 1)), offset};
  }
  return out;
}

std::vector<std::string> query_values(std::string_view target, std::string_view name) {
  std::vector<std::string> out;
  for (auto& [key, value] : query_pairs(target)) {
    if (key == name && !value.empty()) out.push_back(std::move(value));
  }
  return out;
}

}  // namespace herald::protocol::sse
