#include <gtest/gtest.h>

#include "herald/delivery/channel_policy.hpp"

namespace herald {
namespace {

TEST(Glob, Matches) {
  EXPECT_TRUE(glob_match("news.*", "news.sports"));
  EXPECT_TRUE(glob_match("news.*", "news."));
  EXPECT_TRUE(glob_match("news.*", "news.a.b"));
  EXPECT_FALSE(glob_match("news.*", "news"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("a?c", "abc"));
  EXPECT_FALSE(glob_match("a?c", "ac"));
  EXPECT_TRUE(glob_match("*.orders.*", "eu.orders.42"));
  EXPECT_TRUE(glob_match("orders.42", "orders.42"));
  EXPECT_FALSE(glob_match("orders.42", "orders.421"));
  EXPECT_TRUE(glob_match("a*b*c", "aXbYbZc"));
  EXPECT_FALSE(glob_match("a*b*c", "aXbYbZ"));
  // Pathological input stays fast (no exponential backtracking).
  EXPECT_FALSE(glob_match(std::string(50, '*') + "x", std::string(5000, 'a')));
}

connection_info who(std::string user, string_pairs context = {}) {
  connection_info c;
  c.set_user_id(user);
  if (!context.empty()) c.authorizer = std::make_shared<const string_pairs>(std::move(context));
  return c;
}

TEST(ChannelPolicy, DefaultIsOpenWithoutRules) {
  channels_config cfg;
  channel_policy p(cfg);
  EXPECT_EQ(p.subscribe("anything", who("")).what, channel_policy::verdict::allow);
  EXPECT_EQ(p.publish("anything", who("")).what,
            channel_policy::verdict::deny);  // needs publish: true
  cfg.default_access = channel_access::deny;
  EXPECT_EQ(p.subscribe("anything", who("")).what, channel_policy::verdict::deny);
}

TEST(ChannelPolicy, FirstMatchingRuleDecides) {
  channels_config cfg;
  cfg.default_access = channel_access::deny;
  cfg.rules = {
      {"public.*", channel_access::open, "channels", "", false},
      {"chat.*", channel_access::open, "channels", "", true},
      {"user.{user}", channel_access::open, "channels", "", false},
      {"orders.*", channel_access::claim, "channels", "", false},
      {"secure.*", channel_access::integration, "channels", "gate", false},
      {"*", channel_access::deny, "channels", "", false},
  };
  channel_policy p(cfg);
  using v = channel_policy::verdict;
  EXPECT_EQ(p.subscribe("public.news", who("")).what, v::allow);
  EXPECT_EQ(p.publish("public.news", who("")).what, v::deny);
  EXPECT_EQ(p.publish("chat.room1", who("")).what, v::allow);
  EXPECT_EQ(p.subscribe("user.alice", who("alice")).what, v::allow);
  EXPECT_EQ(p.subscribe("user.alice", who("bob")).what, v::deny);
  EXPECT_EQ(p.subscribe("user.alice", who("")).what, v::deny);
  // Claims: a comma list or a JSON array, with globs and {user}.
  const auto alice = who("alice", {{"channels", "orders.42, news.*"}});
  EXPECT_EQ(p.subscribe("orders.42", alice).what, v::allow);
  EXPECT_EQ(p.subscribe("orders.43", alice).what, v::deny);
  const auto bob = who("bob", {{"channels", R"(["orders.*"])"}});
  EXPECT_EQ(p.subscribe("orders.43", bob).what, v::allow);
  const auto carol = who("carol", {{"channels", "orders.{user}"}});
  EXPECT_EQ(p.subscribe("orders.carol", carol).what, v::allow);
  EXPECT_EQ(p.subscribe("orders.dave", carol).what, v::deny);
  EXPECT_EQ(p.subscribe("orders.42", who("x")).what, v::deny);  // no claim at all
  const auto d = p.subscribe("secure.vault", who("x"));
  EXPECT_EQ(d.what, v::ask);
  ASSERT_NE(d.rule, nullptr);
  EXPECT_EQ(d.rule->integration, "gate");
  EXPECT_EQ(p.subscribe("other", who("x")).what, v::deny);
}

}  // namespace
}  // namespace herald
