#include <gtest/gtest.h>

#include "herald/common/cidr.hpp"

namespace herald {
namespace {

bool in(const char* range, const char* addr) {
  return cidr::parse(range)->contains(*ip_address::parse(addr));
}

TEST(Cidr, ParsesAndMatches) {
  EXPECT_TRUE(in("10.0.0.0/8", "10.255.1.2"));
  EXPECT_FALSE(in("10.0.0.0/8", "11.0.0.1"));
  EXPECT_TRUE(in("192.168.1.0/24", "192.168.1.200"));
  EXPECT_FALSE(in("192.168.1.0/24", "192.168.2.1"));
  EXPECT_TRUE(in("172.16.0.0/12", "172.31.255.255"));
  EXPECT_FALSE(in("172.16.0.0/12", "172.32.0.0"));
  EXPECT_TRUE(in("127.0.0.1", "127.0.0.1"));
  EXPECT_FALSE(in("127.0.0.1", "127.0.0.2"));
  EXPECT_TRUE(in("0.0.0.0/0", "8.8.8.8"));
  EXPECT_TRUE(in("2001:db8::/32", "2001:db8:1::1"));
  EXPECT_FALSE(in("2001:db8::/32", "2001:db9::1"));
  EXPECT_TRUE(in("::1", "::1"));
  EXPECT_TRUE(in("10.0.0.0/8", "::ffff:10.1.2.3"));  // IPv4-mapped
  for (const char* bad :
       {"", "10.0.0.0/33", "10.0.0/8", "::1/129", "x", "10.0.0.0/", "10.0.0.0/8a"}) {
    EXPECT_FALSE(cidr::parse(bad)) << bad;
  }
}

TEST(ClientAddress, OnlyTrustedProxiesMayNameTheClient) {
  const std::vector<cidr> trusted{*cidr::parse("10.0.0.0/8"), *cidr::parse("127.0.0.1")};
  // Direct client: its X-Forwarded-For is ignored (it could say anything).
  EXPECT_EQ(client_address("203.0.113.7", "1.2.3.4", trusted), "203.0.113.7");
  // Through one proxy.
  EXPECT_EQ(client_address("10.0.0.5", "203.0.113.7", trusted), "203.0.113.7");
  // Through two proxies; the leftmost entry is client-supplied and not believed.
  EXPECT_EQ(client_address("10.0.0.5", "6.6.6.6, 203.0.113.7, 10.0.0.9", trusted), "203.0.113.7");
  // Every hop trusted: the leftmost is the best we know.
  EXPECT_EQ(client_address("127.0.0.1", "10.1.1.1, 10.2.2.2", trusted), "10.1.1.1");
  // Garbage stops the walk at the last good address.
  EXPECT_EQ(client_address("10.0.0.5", "203.0.113.7, not-an-ip", trusted), "10.0.0.5");
  // No header, or nothing trusted.
  EXPECT_EQ(client_address("10.0.0.5", "", trusted), "10.0.0.5");
  EXPECT_EQ(client_address("10.0.0.5", "203.0.113.7", {}), "10.0.0.5");
}

}  // namespace
}  // namespace herald
