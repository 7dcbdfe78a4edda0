// The dispatcher without sockets: fan-out to local subscribers on several workers, exclusions,
// ordering, users, broadcasts, and history catch-up, with the single-node backplane and
// workers that run when the test says so.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "herald/delivery/backplane.hpp"
#include "herald/delivery/connection_registry.hpp"
#include "herald/delivery/dispatcher.hpp"
#include "herald/protocol/client_frames.hpp"
#include "support/fake_connection.hpp"

namespace herald {
namespace {

using testing::manual_workers;
using testing::recording_connection;

struct node {
  explicit node(config c = {}, unsigned n = 2) : cfg(std::move(c)) {
    backplane = make_local_backplane(
        cfg, [this](publication p) { dispatcher->deliver_from_cluster(std::move(p)); },
        workers.poster());
    dispatcher =
        std::make_unique<herald::dispatcher>(cfg, registry, *backplane, n, workers.poster());
  }
  ~node() {
    for (auto& c : open)
      dispatcher->on_close(*c);
  }

  std::shared_ptr<recording_connection> connect(unsigned worker, std::string user = {}) {
    auto c = std::make_shared<recording_connection>(worker, std::move(user));
    registry.add(c);
    dispatcher->on_open(*c);
    open.push_back(c);
    return c;
  }
  void close(const std::shared_ptr<recording_connection>& c) {
    dispatcher->on_close(*c);
    registry.remove(*c);
    std::erase(open, c);
  }
  subscribe_result subscribe(recording_connection& c, const std::string& channel,
                             subscribe_options opts = {}) {
    subscribe_result out;
    bool answered = false;
    dispatcher->subscribe(c, channel, std::move(opts), [&](subscribe_result r) {
      out = std::move(r);
      answered = true;
    });
    workers.run();
    EXPECT_TRUE(answered);
    return out;
  }
  publish_outcome publish(publication p) {
    publish_outcome out;
    bool answered = false;
    dispatcher->publish(std::move(p), [&](publish_outcome o) {
      out = std::move(o);
      answered = true;
    });
    workers.run();
    EXPECT_TRUE(answered);
    return out;
  }

  config cfg;
  manual_workers workers;
  connection_registry registry;
  std::unique_ptr<herald::backplane> backplane;
  std::unique_ptr<herald::dispatcher> dispatcher;
  std::vector<std::shared_ptr<recording_connection>> open;
};

std::string epoch_of(const std::string& frame) {
  return nlohmann::json::parse(frame).at("epoch").get<std::string>();
}

publication to_channel(const std::string& channel, const std::string& data) {
  return publication::message(target_kind::channel, channel, data);
}

TEST(Dispatcher, FansOutToSubscribersOnEveryWorker) {
  node n;
  auto a = n.connect(0), b = n.connect(1), c = n.connect(1), idle = n.connect(0);
  for (auto* s : {a.get(), b.get(), c.get()})
    EXPECT_EQ(n.subscribe(*s, "news").status, subscribe_status::ok);
  const auto o = n.publish(to_channel("news", R"({"headline":"x"})"));
  EXPECT_EQ(o.recipients, 3u);
  EXPECT_FALSE(o.forwarded);  // one node: nobody to forward to
  const std::string frame = protocol::message("news", R"({"headline":"x"})");
  for (auto* s : {a.get(), b.get(), c.get()})
    EXPECT_EQ(s->frames, std::vector<std::string>{frame});
  EXPECT_TRUE(idle->frames.empty());
  // Another channel reaches nobody, and only the workers holding subscribers are asked.
  const std::size_t before = n.workers.posted();
  EXPECT_EQ(n.publish(to_channel("sports", "1")).recipients, 0u);
  EXPECT_EQ(n.workers.posted(), before);
  EXPECT_EQ(
      n.dispatcher->metrics(0).deliveries.value() + n.dispatcher->metrics(1).deliveries.value(),
      3u);
}

TEST(Dispatcher, SkipsTheExcludedConnection) {
  node n;
  auto sender = n.connect(0), other = n.connect(1);
  n.subscribe(*sender, "room");
  n.subscribe(*other, "room");
  auto p = to_channel("room", R"("hi")");
  p.exclude = std::string(sender->id().view());
  EXPECT_EQ(n.publish(std::move(p)).recipients, 1u);
  EXPECT_TRUE(sender->frames.empty());
  EXPECT_EQ(other->frames.size(), 1u);
}

TEST(Dispatcher, KeepsPublicationOrderPerSubscriber) {
  node n;
  auto a = n.connect(0), b = n.connect(1);
  n.subscribe(*a, "feed");
  n.subscribe(*b, "feed");
  std::vector<std::string> expected;
  for (int i = 0; i < 200; ++i) {
    n.dispatcher->publish(to_channel("feed", std::to_string(i)), [](publish_outcome) {});
    expected.push_back(protocol::message("feed", std::to_string(i)));
  }
  n.workers.run();
  EXPECT_EQ(a->frames, expected);
  EXPECT_EQ(b->frames, expected);
}

TEST(Dispatcher, UnsubscribeAndCloseLeaveTheChannel) {
  node n;
  auto a = n.connect(0), b = n.connect(1), c = n.connect(1);
  for (auto* s : {a.get(), b.get(), c.get()})
    n.subscribe(*s, "news");
  EXPECT_EQ(n.dispatcher->channels_of(*a), std::vector<std::string>{"news"});
  n.dispatcher->unsubscribe(*a, "news");
  n.close(b);
  EXPECT_EQ(n.publish(to_channel("news", "1")).recipients, 1u);
  EXPECT_TRUE(a->frames.empty());
  EXPECT_TRUE(b->frames.empty());
  EXPECT_EQ(c->frames.size(), 1u);
  EXPECT_TRUE(n.dispatcher->channels_of(*a).empty());
  // Subscribing twice is one subscription.
  n.subscribe(*c, "news");
  EXPECT_EQ(n.publish(to_channel("news", "2")).recipients, 1u);
}

TEST(Dispatcher, LimitsAndNames) {
  config cfg;
  cfg.channels.max_per_connection = 2;
  node n(cfg);
  auto a = n.connect(0);
  EXPECT_EQ(n.subscribe(*a, "one").status, subscribe_status::ok);
  EXPECT_EQ(n.subscribe(*a, "two").status, subscribe_status::ok);
  EXPECT_EQ(n.subscribe(*a, "three").status, subscribe_status::too_many);
  EXPECT_EQ(n.subscribe(*a, "bad name").status, subscribe_status::invalid_channel);
}

TEST(Dispatcher, UsersConnectionsAndBroadcasts) {
  node n;
  auto a1 = n.connect(0, "alice"), a2 = n.connect(1, "alice"), bob = n.connect(1, "bob");
  EXPECT_EQ(n.publish(publication::message(target_kind::user, "alice", R"("hi")")).recipients, 2u);
  EXPECT_EQ(a1->frames, std::vector<std::string>{protocol::message("", R"("hi")")});
  EXPECT_EQ(a2->frames.size(), 1u);
  EXPECT_TRUE(bob->frames.empty());

  const auto o = n.publish(
      publication::message(target_kind::connection, std::string(bob->id().view()), "1", "m-1"));
  EXPECT_EQ(o.recipients, 1u);
  EXPECT_EQ(bob->frames, std::vector<std::string>{protocol::message("", "1", "m-1")});
  // An id nobody holds: not here, and one node has nowhere else to look.
  EXPECT_EQ(n.publish(publication::message(target_kind::connection,
                                           std::string(connection_id::generate().view()), "1"))
                .recipients,
            0u);

  EXPECT_EQ(n.publish(publication::message(target_kind::broadcast, "", "2")).recipients, 3u);
  EXPECT_EQ(bob->frames.size(), 2u);
}

TEST(Dispatcher, HistoryChannelsResumeInOrderThenGoLive) {
  config cfg;
  cfg.history.rules.push_back({"orders.*", 100, std::chrono::hours(1)});
  node n(cfg);
  auto first = n.connect(0);
  const auto sub = n.subscribe(*first, "orders.1");
  EXPECT_TRUE(sub.history);
  for (int i = 1; i <= 5; ++i) {
    const auto o = n.publish(to_channel("orders.1", std::to_string(i)));
    ASSERT_TRUE(o.stored);
    ASSERT_TRUE(o.store.ok);
    EXPECT_EQ(o.store.offset, static_cast<std::uint64_t>(i));
    EXPECT_FALSE(o.forwarded);
  }
  ASSERT_EQ(first->frames.size(), 5u);
  const std::string epoch = epoch_of(first->frames[0]);

  // A second subscriber resumes after offset 2: it gets 3, 4, 5 (with offsets), then live 6.
  auto late = n.connect(1);
  subscribe_options opts;
  opts.since = 2;
  opts.epoch = epoch;
  const auto resumed = n.subscribe(*late, "orders.1", opts);
  EXPECT_TRUE(resumed.resumed);
  EXPECT_TRUE(resumed.recovered);
  EXPECT_EQ(resumed.offset, 5u);
  n.publish(to_channel("orders.1", "6"));
  std::vector<std::string> expected;
  for (int i = 3; i <= 6; ++i)
    expected.push_back(
        protocol::message("orders.1", std::to_string(i), "", static_cast<std::uint64_t>(i), epoch));
  EXPECT_EQ(late->frames, expected);

  // Another epoch than the history's: not the same history, so not recovered.
  auto stranger = n.connect(0);
  opts.epoch = "not-" + epoch;
  EXPECT_FALSE(n.subscribe(*stranger, "orders.1", opts).recovered);
}

}  // namespace
}  // namespace herald
