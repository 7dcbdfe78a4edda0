#include <thread>

#include <gtest/gtest.h>

#include "herald/delivery/connection_registry.hpp"

namespace herald {
namespace {

// A connection with no socket behind it.
class fake_connection final : public connection {
 public:
  explicit fake_connection(std::string user) : connection(make_info(std::move(user))) {}
  send_result send(message_ptr, bool) override { return send_result::queued; }
  void close(std::uint16_t, std::string) override {}
  void begin_request() override {}
  void end_request() override {}

 private:
  static connection_info make_info(std::string user) {
    connection_info info;
    info.id = connection_id::generate();
    info.set_user_id(user);
    return info;
  }
};

// The handshake's texts share one buffer: setting one in any order leaves the others intact,
// copies are deep and a moved-from info is empty, not dangling.
TEST(ConnectionInfo, TextsAreSetInAnyOrderCopiedAndMoved) {
  connection_info info;
  EXPECT_EQ(info.source_ip(), "");
  EXPECT_EQ(info.user_agent(), "");
  info.set_host("ws.example.com");
  info.set_source_ip("203.0.113.7");
  info.set_user_id("alice");
  info.set_user_agent(std::string(300, 'u'));
  info.set_subprotocol("graphql-ws");
  EXPECT_EQ(info.host(), "ws.example.com");
  EXPECT_EQ(info.source_ip(), "203.0.113.7");
  EXPECT_EQ(info.user_id(), "alice");
  EXPECT_EQ(info.user_agent(), std::string(300, 'u'));
  EXPECT_EQ(info.subprotocol(), "graphql-ws");

  info.set_user_agent("short");  // shrinking one text moves those after it
  info.set_source_ip("2001:db8::1234:5678:9abc:def0");
  info.set_subprotocol({});
  EXPECT_EQ(info.source_ip(), "2001:db8::1234:5678:9abc:def0");
  EXPECT_EQ(info.user_agent(), "short");
  EXPECT_EQ(info.host(), "ws.example.com");
  EXPECT_EQ(info.subprotocol(), "");
  EXPECT_EQ(info.user_id(), "alice");

  connection_info copy = info;
  info.set_user_id("bob");
  EXPECT_EQ(copy.user_id(), "alice");
  EXPECT_EQ(copy.host(), "ws.example.com");

  connection_info moved = std::move(copy);
  EXPECT_EQ(moved.user_id(), "alice");
  EXPECT_EQ(moved.source_ip(), "2001:db8::1234:5678:9abc:def0");
  EXPECT_EQ(copy.user_id(), "");  // NOLINT(bugprone-use-after-move): defined as empty
  EXPECT_EQ(copy.host(), "");     // NOLINT(bugprone-use-after-move)

  using setter = void (connection_info::*)(std::string_view);
  for (setter set : {&connection_info::set_source_ip, &connection_info::set_user_agent,
                     &connection_info::set_host, &connection_info::set_subprotocol,
                     &connection_info::set_user_id}) {
    (moved.*set)({});
  }
  EXPECT_EQ(moved.source_ip(), "");
  EXPECT_EQ(moved.user_id(), "");
}

TEST(Registry, FindsByIdAndByUser) {
  connection_registry r;
  auto a = std::make_shared<fake_connection>("alice");
  auto b = std::make_shared<fake_connection>("alice");
  auto c = std::make_shared<fake_connection>("");
  r.add(a);
  r.add(b);
  r.add(c);
  EXPECT_EQ(r.size(), 3u);
  EXPECT_EQ(r.find(a->id()), a);
  EXPECT_EQ(r.find(c->id()), c);
  EXPECT_EQ(r.find(connection_id::generate()), nullptr);
  EXPECT_EQ(r.find_user("alice").size(), 2u);
  EXPECT_TRUE(r.find_user("bob").empty());
  EXPECT_EQ(r.user_count(), 1u);

  r.remove(*a);
  EXPECT_EQ(r.size(), 2u);
  EXPECT_EQ(r.find(a->id()), nullptr);
  ASSERT_EQ(r.find_user("alice").size(), 1u);
  EXPECT_EQ(r.find_user("alice")[0], b);
  r.remove(*a);  // twice is harmless
  EXPECT_EQ(r.size(), 2u);
  r.remove(*b);
  EXPECT_TRUE(r.find_user("alice").empty());
  EXPECT_EQ(r.user_count(), 0u);
}

TEST(Registry, NeverOwnsConnections) {
  connection_registry r;
  auto a = std::make_shared<fake_connection>("u");
  const auto id = a->id();
  r.add(a);
  std::weak_ptr<fake_connection> weak = a;
  a.reset();
  EXPECT_TRUE(weak.expired());
  EXPECT_EQ(r.find(id), nullptr);
  EXPECT_TRUE(r.find_user("u").empty());
}

TEST(Registry, ConcurrentAddRemoveFind) {
  connection_registry r;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&r, t] {
      for (int i = 0; i < 2000; ++i) {
        auto c = std::make_shared<fake_connection>("user-" + std::to_string((t * 7 + i) % 13));
        r.add(c);
        EXPECT_EQ(r.find(c->id()), c);
        EXPECT_FALSE(r.find_user(std::string(c->info().user_id())).empty());
        r.remove(*c);
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(r.size(), 0u);
  EXPECT_EQ(r.user_count(), 0u);
}

}  // namespace
}  // namespace herald
