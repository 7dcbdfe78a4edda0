#include "herald/common/cidr.hpp"
#include "herald/common/text.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace herald {

std::optional<ip_address> ip_address::parse(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN] = {};
  std::memcpy(buf, text.data(), text.size());
  ip_address a;
  in_addr v4{};
  if (inet_pton(AF_INET, buf, &v4) == 1) {
    a.bytes[10] = a.bytes[11] = 0xff;
    std::memcpy(a.bytes.data() + 12, &v4, 4);
    return a;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, buf, &v6) == 1) {
    std::memcpy(a.bytes.data(), &v6, 16);
    return a;
  }
  return std::nullopt;
}

std::optional<cidr> cidr::parse(std::string_view text) {
  const auto slash = text.find('/');
  const auto addr = ip_address::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  const bool is_v4 = text.substr(0, slash).find(':') == std::string_view::npos;
  unsigned prefix = is_v4 ? 32 : 128;
  if (slash != std::string_view::npos) {
    const std::string_view p = text.substr(slash + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (ec != std::errc() || ptr != p.data() + p.size() || p.empty() ||
        prefix > (is_v4 ? 32u : 128u)) {
      return std::nullopt;
    }
  }
  cidr c;
  c.network_ = *addr;
  c.prefix_ = is_v4 ? prefix + 96 : prefix;
  // Clear host bits so contains() can compare masked bytes.
  for (unsigned bit = c.prefix_; bit < 128; ++bit) {
    c.network_.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  }
  return c;
}

bool cidr::contains(const ip_address& a) const {
  for (unsigned bit = 0; bit < prefix_; bit += 8) {
    const unsigned take = prefix_ - bit >= 8 ? 8 : prefix_ - bit;
    const auto mask = static_cast<std::uint8_t>(0xFF00u >> take);
    if ((a.bytes[bit / 8] & mask) != network_.bytes[bit / 8]) return false;
  }
  return true;
}

bool trusted_address(std::string_view text, const std::vector<cidr>& trusted) {
  const auto a = ip_address::parse(text);
  if (!a) return false;
  for (const auto& c : trusted) {
    if (c.contains(*a)) return true;
  }
  return false;
}

std::string client_address(std::string_view peer, std::string_view x_forwarded_for,
                           const std::vector<cidr>& trusted) {
  if (trusted.empty() || x_forwarded_for.empty() || !trusted_address(peer, trusted)) {
    return std::string(peer);
  }
  std::string_view client = peer;
  std::string_view rest = x_forwarded_for;
  while (!rest.empty()) {
    const auto comma = rest.rfind(',');
    const std::string_view hop =
        trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(0, comma);
    if (!ip_address::parse(hop)) break;  // garbage: keep the last good address
    client = hop;
    if (!trusted_address(hop, trusted)) break;
  }
  return std::string(client);
}

}  // namespace herald
