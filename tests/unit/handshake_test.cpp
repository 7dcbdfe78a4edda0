#include <gtest/gtest.h>

#include "herald/delivery/connection_id.hpp"
#include "herald/ws/handshake.hpp"

namespace herald::ws {
namespace {

TEST(Handshake, AcceptKeyMatchesRfc6455Example) {
  // RFC 6455 section 1.3.
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(Handshake, ClientKeyMustBeSixteenBytesOfBase64) {
  EXPECT_TRUE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_TRUE(is_valid_client_key(" dGhlIHNhbXBsZSBub25jZQ== "));
  EXPECT_FALSE(is_valid_client_key(""));
  EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZQ"));    // no padding
  EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZXg="));  // 17 bytes
  EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25jZR=="));  // non-canonical
  EXPECT_FALSE(is_valid_client_key("dGhlIHNhbXBsZSBub25j*Q=="));
}

TEST(Handshake, Base64RoundTrips) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    const auto encoded = base64_encode(s);
    const auto decoded = base64_decode(encoded);
    ASSERT_TRUE(decoded) << encoded;
    EXPECT_EQ(*decoded, s);
  }
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode(std::string("\xff\x00\xfe", 3)), "/wD+");
  EXPECT_FALSE(base64_decode("Zm9=v"));
  EXPECT_FALSE(base64_decode("Zm=v"));
  EXPECT_FALSE(base64_decode("Z==="));
}

TEST(Handshake, HeaderTokens) {
  EXPECT_TRUE(header_has_token("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(header_has_token("UPGRADE", "upgrade"));
  EXPECT_FALSE(header_has_token("upgrades", "upgrade"));
  EXPECT_FALSE(header_has_token("", "upgrade"));
  EXPECT_EQ(split_header_list(" a, b ,,c "), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(Handshake, SubprotocolFollowsServerPreference) {
  EXPECT_EQ(choose_subprotocol({"b", "a"}, {"a", "b"}), "a");
  EXPECT_EQ(choose_subprotocol({"x"}, {"a"}), std::nullopt);
  EXPECT_EQ(choose_subprotocol({}, {"a"}), std::nullopt);
}

TEST(ConnectionId, IsFixedLengthUrlSafeAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    const auto id = herald::connection_id::generate();
    ASSERT_EQ(id.view().size(), herald::connection_id::length);
    ASSERT_TRUE(herald::connection_id::parse(id.view())) << id.str();
    ASSERT_TRUE(seen.insert(id.str()).second);
  }
  EXPECT_FALSE(herald::connection_id::parse("short"));
  EXPECT_FALSE(herald::connection_id::parse("AAAAAAAAAAAAAAAAAAA="));
  EXPECT_FALSE(herald::connection_id::parse("AAAAAAAAAAAAAAAAAAAAA"));
  EXPECT_EQ(herald::make_request_id().size(), 16u);
}

}  // namespace
}  // namespace herald::ws
