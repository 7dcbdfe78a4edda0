#include <algorithm>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "herald/delivery/topic_index.hpp"

namespace herald {
namespace {

struct sub {
  int id;
};

std::set<int> ids(std::span<sub* const> subs) {
  std::set<int> out;
  for (auto* s : subs)
    out.insert(s->id);
  return out;
}

TEST(TopicIndex, SubscribeReportsFirstAndLast) {
  basic_topic_index<sub> t;
  sub a{1}, b{2};
  auto c = t.subscribe("news", &a);
  EXPECT_TRUE(c.changed);
  EXPECT_TRUE(c.channel_edge);  // first subscriber
  c = t.subscribe("news", &b);
  EXPECT_TRUE(c.changed);
  EXPECT_FALSE(c.channel_edge);
  c = t.subscribe("news", &b);  // again: nothing changes
  EXPECT_FALSE(c.changed);
  EXPECT_EQ(ids(t.subscribers("news")), (std::set<int>{1, 2}));
  EXPECT_EQ(t.subscription_count(), 2u);

  c = t.unsubscribe("news", &a);
  EXPECT_TRUE(c.changed);
  EXPECT_FALSE(c.channel_edge);
  c = t.unsubscribe("news", &b);
  EXPECT_TRUE(c.changed);
  EXPECT_TRUE(c.channel_edge);  // last one left
  EXPECT_TRUE(t.subscribers("news").empty());
  EXPECT_EQ(t.channel_count(), 0u);
  EXPECT_FALSE(t.unsubscribe("news", &b).changed);
  EXPECT_FALSE(t.unsubscribe("nothing", &b).changed);
}

TEST(TopicIndex, RemoveDropsEveryChannelOfASubscriber) {
  basic_topic_index<sub> t;
  sub a{1}, b{2};
  t.subscribe("x", &a);
  t.subscribe("y", &a);
  t.subscribe("y", &b);
  EXPECT_EQ(t.subscription_count(&a), 2u);
  std::vector<std::string> emptied;
  t.remove(&a, [&](const std::string& ch) { emptied.push_back(ch); });
  EXPECT_EQ(emptied, (std::vector<std::string>{"x"}));
  EXPECT_EQ(t.subscription_count(&a), 0u);
  EXPECT_EQ(ids(t.subscribers("y")), (std::set<int>{2}));
  EXPECT_TRUE(t.subscribers("x").empty());
  EXPECT_EQ(t.channel_count(), 1u);
  t.remove(&a);  // twice is harmless
  EXPECT_EQ(t.channels_of(&b), (std::vector<std::string>{"y"}));
}

TEST(TopicIndex, AgreesWithAReferenceModelUnderRandomOperations) {
  basic_topic_index<sub> t;
  std::vector<sub> subs(50);
  for (int i = 0; i < 50; ++i)
    subs[i].id = i;
  std::map<std::string, std::set<int>> model;
  std::mt19937 rng(12345);
  for (int step = 0; step < 20000; ++step) {
    sub* s = &subs[rng() % subs.size()];
    const std::string ch = "c" + std::to_string(rng() % 20);
    switch (rng() % 5) {
      case 0:
      case 1:
      case 2: {
        const bool was_empty = model[ch].empty();
        const bool added = model[ch].insert(s->id).second;
        const auto c = t.subscribe(ch, s);
        ASSERT_EQ(c.changed, added);
        ASSERT_EQ(c.channel_edge, added && was_empty);
        break;
      }
      case 3: {
        const bool removed = model[ch].erase(s->id) != 0;
        const auto c = t.unsubscribe(ch, s);
        ASSERT_EQ(c.changed, removed);
        ASSERT_EQ(c.channel_edge, removed && model[ch].empty());
        break;
      }
      default: {
        t.remove(s);
        for (auto& [name, members] : model)
          members.erase(s->id);
      }
    }
    if (step % 500 == 0) {
      std::size_t total = 0, channels = 0;
      for (const auto& [name, members] : model) {
        ASSERT_EQ(ids(t.subscribers(name)), members) << name;
        total += members.size();
        channels += members.empty() ? 0 : 1;
      }
      ASSERT_EQ(t.subscription_count(), total);
      ASSERT_EQ(t.channel_count(), channels);
    }
  }
}

TEST(ChannelWorkers, TracksWhichWorkersHaveAChannel) {
  channel_workers cw(4);
  EXPECT_EQ(cw.all(), 0b1111u);
  EXPECT_EQ(cw.of("news"), 0u);  // nobody: a publication is posted to no worker
  cw.add("news", 0);
  cw.add("news", 2);
  cw.add("sport", 3);
  EXPECT_EQ(cw.of("news"), 0b0101u);
  EXPECT_EQ(cw.of(std::string_view("sport")), 0b1000u);
  cw.remove("news", 0);
  EXPECT_EQ(cw.of("news"), 0b0100u);
  cw.remove("news", 2);
  cw.remove("news", 2);  // twice: harmless
  EXPECT_EQ(cw.of("news"), 0u);
  cw.remove("unknown", 1);
  EXPECT_EQ(cw.of("sport"), 0b1000u);
}

TEST(ChannelWorkers, SixtyFourWorkersAreTrackedAndMoreGoEverywhere) {
  channel_workers sixty_four(64);
  EXPECT_EQ(sixty_four.all(), ~std::uint64_t{0});
  sixty_four.add("c", 63);
  EXPECT_EQ(sixty_four.of("c"), std::uint64_t{1} << 63);
  channel_workers many(100);
  many.add("c", 99);  // not tracked: every worker gets every channel publication
  EXPECT_EQ(many.of("c"), ~std::uint64_t{0});
  EXPECT_EQ(many.of("other"), ~std::uint64_t{0});
}

}  // namespace
}  // namespace herald
