// IP networks in CIDR notation and the client address behind trusted proxies.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace herald {

// An IPv4 or IPv6 address (IPv4 is kept as its IPv4-mapped IPv6 form).
struct ip_address {
  std::array<std::uint8_t, 16> bytes{};
  static std::optional<ip_address> parse(std::string_view text);
};

// An address range (10.0.0.0/8, ::1/128) that an address may fall in.
class cidr {
 public:
  // "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128). nullopt if malformed.
  static std::optional<cidr> parse(std::string_view text);
  bool contains(const ip_address& a) const;

 private:
  ip_address network_;
  unsigned prefix_ = 128;  // in the 128-bit space
};

// Whether `address` (an IP address as text) is in one of the `trusted` ranges.
bool trusted_address(std::string_view address, const std::vector<cidr>& trusted);

// The client's address: `peer`, unless `peer` is a trusted proxy, in which case the
// X-Forwarded-For list is walked from the right, skipping trusted proxies, and the first
// untrusted address is the client. Malformed entries stop the walk (the last good address wins).
std::string client_address(std::string_view peer, std::string_view x_forwarded_for,
                           const std::vector<cidr>& trusted);

}  // namespace herald
