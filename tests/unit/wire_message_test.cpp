// A shared message's compressed forms: made once per window size however many recipients (and
// threads) ask, identical to compressing it directly, and kept for later callers.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "herald/delivery/wire_message.hpp"
#include "herald/ws/deflate.hpp"

namespace herald {
namespace {

std::string notification() {
  std::string s = R"({"type":"message","channel":"orders","data":{"items":[)";
  for (int i = 0; i < 20; ++i)
    s += R"({"sku":"SKU-)" + std::to_string(1000 + i) + R"(","quantity":1},)";
  s += R"({}]}})";
  return s;
}

TEST(WireMessage, CompressedOncePerWindowAndShared) {
  const wire_message m(notification());
  bool made = false;
  const auto first = m.deflated(15, 6, made);
  EXPECT_TRUE(made);
  EXPECT_EQ(first, ws::deflate_message(m.bytes(), 15, 6));
  EXPECT_LT(first.size(), m.size() / 2);
  const auto again = m.deflated(15, 6, made);
  EXPECT_FALSE(made);
  EXPECT_EQ(again.data(), first.data()) << "the same bytes, not a copy";
  // Another window is another form, made once too; the first one stays valid.
  const auto small = m.deflated(9, 6, made);
  EXPECT_TRUE(made);
  EXPECT_EQ(small, ws::deflate_message(m.bytes(), 9, 6));
  m.deflated(9, 6, made);
  EXPECT_FALSE(made);
  EXPECT_EQ(m.deflated(15, 6, made).data(), first.data());
  // What it inflates back to.
  ws::inflater in;
  std::string out;
  ASSERT_EQ(in.inflate(first, 1 << 20, out), ws::inflater::status::ok);
  EXPECT_EQ(out, m.bytes());
}

TEST(WireMessage, ConcurrentRecipientsCompressOnce) {
  for (int round = 0; round < 50; ++round) {
    const auto m = make_message(notification() + std::to_string(round));
    std::atomic<int> made_count{0};
    std::atomic<bool> go{false};
    std::vector<std::string> seen(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        while (!go.load()) {
        }
        bool made = false;
        seen[static_cast<std::size_t>(t)] = std::string(m->deflated(15 - (t % 2), 6, made));
        if (made) made_count.fetch_add(1);
      });
    }
    go = true;
    for (auto& th : threads)
      th.join();
    EXPECT_EQ(made_count.load(), 2) << "one per window (15 and 14)";
    EXPECT_EQ(seen[0], seen[2]);
    EXPECT_EQ(seen[1], seen[3]);
  }
}

}  // namespace
}  // namespace herald
