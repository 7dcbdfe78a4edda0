// The dispatcher without sockets: fan-out to local subscribers on several workers, exclusions,
// ordering, users, broadcasts, and history catch-up, with the single-node backplane and
// workers that run when the test says so.
#include <gtest/gtest.h>

#include <deque>
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

// A backplane whose history reads wait for the test to answer them, and whose live history
// publications the test hands over itself (deliver_from_cluster): the orders in which Redis
// answers and pub/sub delivers that a real cluster produces only now and then.
class scripted_backplane final : public backplane {
 public:
  explicit scripted_backplane(worker_poster post) : post_(std::move(post)) {}
  struct read {
    history_query query;
    unsigned worker;
    std::function<void(history_page)> done;
  };
  std::deque<read> reads;

  // Answers the oldest read with `entries` offsets first..last of `epoch` (none if first > last).
  void answer(const std::string& epoch, std::uint64_t first, std::uint64_t last, bool ok = true) {
    ASSERT_FALSE(reads.empty());
    auto r = std::move(reads.front());
    reads.pop_front();
    history_page page;
    page.ok = ok;
    if (ok) {
      page.epoch = epoch;
      page.top = last;
      page.from = r.query.since.value_or(0);
      for (std::uint64_t o = first; o <= last; ++o)
        page.entries.push_back({o, 0, "", std::to_string(o)});
    } else {
      page.error = "Redis unavailable";
    }
    post_(r.worker,
          [done = std::move(r.done), page = std::move(page)]() mutable { done(std::move(page)); });
  }

  void forward(const publication&, std::function<void(bool)> done) override { done(false); }
  void channel_added(const std::string&, unsigned worker, std::function<void()> ready) override {
    post_(worker, std::move(ready));
  }
  void channel_removed(const std::string&) override {}
  void user_added(const std::string&) override {}
  void user_removed(const std::string&) override {}
  void connection_opened(const connection&) override {}
  void connection_closed(const connection&) override {}
  void locate(const std::string&,
              std::function<void(std::optional<remote_connection>)> done) override {
    done(std::nullopt);
  }
  void send_remote(const remote_connection&, message_ptr, bool,
                   std::function<void(remote_result)> done) override {
    done(remote_result::gone);
  }
  void close_remote(const remote_connection&, std::uint16_t, std::string) override {}
  void publish_stored(const publication&, const history_rule&,
                      std::function<void(stored_result)> done) override {
    done({});
  }
  void read_history(history_query q, const history_rule&, unsigned worker,
                    std::function<void(history_page)> done) override {
    reads.push_back({std::move(q), worker, std::move(done)});
  }
  void ack(const std::string&, std::uint64_t,
           std::function<void(std::optional<std::uint64_t>)> done) override {
    done(std::nullopt);
  }
  void presence_join(const std::string&, const connection&) override {}
  void presence_leave(const std::string&, const connection&) override {}
  void presence(const std::string&, std::size_t,
                std::function<void(presence_result)> done) override {
    done({});
  }
  void append_stream(std::string, std::vector<std::pair<std::string, std::string>>, std::size_t,
                     std::function<void(bool, std::string)> done) override {
    done(false, "no stream");
  }
  backplane_status status() const override { return {}; }
  void write_metrics(prometheus_text&) const override {}

 private:
  worker_poster post_;
};

struct scripted_node {
  scripted_node() {
    cfg.history.rules.push_back({"orders.*", 100, std::chrono::hours(1)});
    backplane = std::make_unique<scripted_backplane>(workers.poster());
    dispatcher =
        std::make_unique<herald::dispatcher>(cfg, registry, *backplane, 1, workers.poster());
    conn = std::make_shared<recording_connection>(0);
    registry.add(conn);
    dispatcher->on_open(*conn);
  }
  ~scripted_node() { dispatcher->on_close(*conn); }

  void subscribe(std::uint64_t since) {
    subscribe_options opts;
    opts.since = since;
    dispatcher->subscribe(*conn, "orders.1", opts, [this](subscribe_result r) { result = r; });
    workers.run();
  }
  // A history publication reaching this node through pub/sub.
  void live(std::uint64_t offset) {
    dispatcher->deliver_from_cluster(
        publication::stored("orders.1", std::to_string(offset), "", offset, "e1"));
    workers.run();
  }
  void answer(std::uint64_t first, std::uint64_t last, bool ok = true) {
    backplane->answer("e1", first, last, ok);
    workers.run();
  }
  // The offsets of the messages the client was sent, in order.
  std::vector<std::uint64_t> offsets() const {
    std::vector<std::uint64_t> out;
    for (const auto& f : conn->frames)
      out.push_back(nlohmann::json::parse(f).at("offset").get<std::uint64_t>());
    return out;
  }
  std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) const {
    std::vector<std::uint64_t> out;
    for (auto o = first; o <= last; ++o)
      out.push_back(o);
    return out;
  }

  config cfg;
  manual_workers workers;
  connection_registry registry;
  std::unique_ptr<scripted_backplane> backplane;
  std::unique_ptr<herald::dispatcher> dispatcher;
  std::shared_ptr<recording_connection> conn;
  subscribe_result result;
};

// The node's own position in the channel may start past what a subscriber's history read
// returned (its subscription confirmed after the read, Redis restarting): the publications in
// between were never handed to the workers. They are read from the history before the live
// one goes out, never skipped.
TEST(Dispatcher, ALivePublicationPastTheSubscribersPositionIsSentAfterTheGapIsRead) {
  scripted_node n;
  n.subscribe(0);
  n.answer(1, 3);
  EXPECT_TRUE(n.result.recovered);
  EXPECT_EQ(n.offsets(), n.range(1, 3));

  n.live(7);  // 4..6 never arrived here
  EXPECT_EQ(n.offsets(), n.range(1, 3));
  ASSERT_EQ(n.backplane->reads.size(), 1u);
  EXPECT_EQ(n.backplane->reads.front().query.since, 3u);
  n.live(8);  // held while the gap is read
  n.answer(4, 8);
  EXPECT_EQ(n.offsets(), n.range(1, 8));  // each once, in order
  n.live(9);
  EXPECT_EQ(n.offsets(), n.range(1, 9));
  EXPECT_EQ(n.dispatcher->metrics(0).gap_reads.value(), 1u);
  EXPECT_EQ(n.conn->closed_code, 0);
}

// The same seam at the end of a catch-up: a live publication held while the subscriber's page
// was read is further on than the page's newest offset.
TEST(Dispatcher, AHeldPublicationPastTheCatchUpPageIsSentAfterTheGapIsRead) {
  scripted_node n;
  n.subscribe(1);
  n.live(6);  // arrives while the catch-up read is out
  n.answer(2, 3);
  EXPECT_EQ(n.offsets(), n.range(2, 3));
  ASSERT_EQ(n.backplane->reads.size(), 1u);
  EXPECT_EQ(n.backplane->reads.front().query.since, 3u);
  n.answer(4, 6);
  EXPECT_EQ(n.offsets(), n.range(2, 6));
}

// A gap the history cannot give back now (Redis away, or trimmed past it): the subscriber is
// closed with 1013 (it resumes, and is told there whether it recovered), never sent over it.
TEST(Dispatcher, AGapTheHistoryCannotFillClosesTheSubscriber) {
  {
    scripted_node n;
    n.subscribe(0);
    n.answer(1, 2);
    n.live(5);
    n.answer(0, 0, false);
    EXPECT_EQ(n.offsets(), n.range(1, 2));
    EXPECT_EQ(n.conn->closed_code, 1013);
    EXPECT_EQ(n.dispatcher->metrics(0).gap_closes.value(), 1u);
  }
  {
    scripted_node n;
    n.subscribe(0);
    n.answer(1, 2);
    n.live(5);
    n.answer(4, 5);  // 3 was trimmed: the page does not follow offset 2
    EXPECT_EQ(n.offsets(), n.range(1, 2));
    EXPECT_EQ(n.conn->closed_code, 1013);
  }
}

}  // namespace
}  // namespace herald
