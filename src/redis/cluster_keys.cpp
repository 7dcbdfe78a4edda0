#include "herald/redis/cluster_keys.hpp"

#include <array>
#include <charconv>

namespace herald::redis {
namespace {

constexpr std::array<std::uint16_t, 256> make_table() {
  std::array<std::uint16_t, 256> t{};
  for (unsigned i = 0; i < 256; ++i) {
    auto crc = static_cast<std::uint16_t>(i << 8);
    for (int bit = 0; bit < 8; ++bit)
      crc = static_cast<std::uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
    t[i] = crc;
  }
  return t;
}
constexpr auto kTable = make_table();

template <class Int>
bool parse_int(std::string_view s, Int& out) {
  if (s.empty()) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::uint16_t crc16(std::string_view data) {
  std::uint16_t crc = 0;
  for (const char c : data) {
    const auto byte = static_cast<std::uint8_t>(c);
    crc = static_cast<std::uint16_t>((crc << 8) ^ kTable[((crc >> 8) ^ byte) & 0xff]);
  }
  return crc;
}

std::string_view hash_tag(std::string_view key) {
  const auto open = key.find('{');
  if (open == std::string_view::npos) return key;
  const auto close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

unsigned key_slot(std::string_view key) {
  return crc16(hash_tag(key)) % cluster_slots;
}

std::optional<redirect> parse_redirect(std::string_view error, std::string_view answered_by) {
  if (error.starts_with('-')) error.remove_prefix(1);
  redirect r;
  if (error.starts_with("MOVED ")) {
    r.type = redirect::kind::moved;
    error.remove_prefix(6);
  } else if (error.starts_with("ASK ")) {
    r.type = redirect::kind::ask;
    error.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const auto space = error.find(' ');
  if (space == std::string_view::npos || !parse_int(error.substr(0, space), r.slot) ||
      r.slot >= cluster_slots)
    return std::nullopt;
  const std::string_view where = error.substr(space + 1);
  const auto colon = where.rfind(':');
  if (colon == std::string_view::npos || !parse_int(where.substr(colon + 1), r.port) ||
      r.port <= 0 || r.port > 65535)
    return std::nullopt;
  std::string_view host = where.substr(0, colon);
  // An IPv6 address may come in brackets; an empty one is the node that answered.
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  r.host = std::string(host.empty() ? answered_by : host);
  return r;
}

}  // namespace herald::redis
