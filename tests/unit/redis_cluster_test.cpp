// Redis Cluster's key space and topology (issue 17, step 3): slots and hash tags, MOVED/ASK,
// and the slot map read from CLUSTER SHARDS, checked against hand-made replies and a real
// three-primary cluster.
#include <memory>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "herald/redis/cluster_keys.hpp"
#include "redis/cluster_client.hpp"
#include "redis/cluster_map.hpp"
#include "redis/cluster_subscriber.hpp"
#include "redis/redis_names.hpp"
#include "support/hiredis_sync.hpp"
#include "support/redis_server.hpp"

namespace herald::redis {
namespace {

using test::reply_ptr;

// A reply parsed from RESP2 bytes, as it would come off the wire.
reply_ptr parse_resp(const std::string& bytes) {
  redisReader* reader = redisReaderCreate();
  redisReaderFeed(reader, bytes.data(), bytes.size());
  void* out = nullptr;
  const int rc = redisReaderGetReply(reader, &out);
  redisReaderFree(reader);
  if (rc != REDIS_OK || !out) throw std::runtime_error("not a complete RESP reply");
  return reply_ptr(static_cast<redisReply*>(out));
}

std::string bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}
std::string integer(long long v) {
  return ":" + std::to_string(v) + "\r\n";
}

// One node of CLUSTER SHARDS, RESP2 (a flat key/value array); endpoint "" is sent as null.
std::string node(const std::string& id, const std::string& endpoint, int port, int tls_port,
                 const std::string& role, const std::string& health) {
  std::string fields = bulk("id") + bulk(id) + bulk("port") + integer(port);
  int n = 2;
  if (tls_port) {
    fields += bulk("tls-port") + integer(tls_port);
    ++n;
  }
  fields += bulk("ip") + bulk("10.0.0.9") + bulk("endpoint") +
            (endpoint.empty() ? std::string("$-1\r\n") : bulk(endpoint)) + bulk("role") +
            bulk(role) + bulk("replication-offset") + integer(14) + bulk("health") + bulk(health);
  n += 5;
  return "*" + std::to_string(2 * n) + "\r\n" + fields;
}

TEST(RedisCluster, SlotsAndHashTags) {
  EXPECT_EQ(crc16("123456789"), 0x31C3);
  EXPECT_EQ(key_slot("123456789"), 12739u);
  EXPECT_EQ(key_slot("user1000"), 3443u);
  EXPECT_EQ(key_slot("{user1000}.following"), 3443u);
  EXPECT_EQ(key_slot("{user1000}.followers"), 3443u);
  EXPECT_EQ(hash_tag("foo{}{bar}"), "foo{}{bar}");  // an empty first tag: the whole key
  EXPECT_EQ(hash_tag("foo{{bar}}zap"), "{bar");
  EXPECT_EQ(hash_tag("foo{bar}{zap}"), "bar");
  EXPECT_EQ(hash_tag("{}binary"), "{}binary");
  EXPECT_EQ(hash_tag("no-tag{"), "no-tag{");
  EXPECT_EQ(key_slot(""), 0u);
  for (const char* k : {"a", "herald:channel:news", "x{y}z", "\xff\x00"})
    EXPECT_LT(key_slot(k), cluster_slots);
}

// On a cluster every name of a channel carries it as a hash tag: one slot for the function
// that touches them together, the same slot as the channel itself (the FCALL key backends pass).
TEST(RedisNames, AChannelsNamesShareItsSlotOnACluster) {
  const redis_names cluster{"herald:", true};
  for (const std::string channel : {"news", "orders.42", "chat:room/1", "$inbox:alice", "a{b"}) {
    const std::uint16_t slot = key_slot(channel);
    for (const auto& name :
         {cluster.channel(channel), cluster.history(channel), cluster.history_meta(channel),
          cluster.idempotency(channel, "order-42-shipped"), cluster.presence(channel)}) {
      EXPECT_EQ(key_slot(name), slot) << name;
    }
    EXPECT_EQ(cluster.channel_of(cluster.channel(channel)), channel);
  }
  EXPECT_EQ(cluster.channel("news"), "herald:channel:{news}");
  EXPECT_EQ(cluster.history_meta("news"), "herald:history-meta:{news}");
  EXPECT_EQ(key_slot(cluster.node("n-1")), key_slot(cluster.alive("n-1")));
  EXPECT_EQ(cluster.user_of(cluster.user("alice")), "alice");
  EXPECT_EQ(cluster.channel_of("herald:channel:news"), std::nullopt);  // not ours on a cluster
  EXPECT_EQ(cluster.channel_of(cluster.user("alice")), std::nullopt);

  // One server: the names backends have always published to.
  const redis_names single{"herald:", false};
  EXPECT_EQ(single.channel("news"), "herald:channel:news");
  EXPECT_EQ(single.history("news"), "herald:history:news");
  EXPECT_EQ(single.idempotency("news", "k"), "herald:idem:news:k");
  EXPECT_EQ(single.node("n-1"), "herald:node:n-1");
  EXPECT_EQ(single.alive("n-1"), "herald:node:n-1:alive");
  EXPECT_EQ(single.channel_of("herald:channel:news"), "news");
  EXPECT_EQ(single.user_of("herald:user:alice"), "alice");
  EXPECT_EQ(single.channel_of("other:channel:news"), std::nullopt);
}

TEST(RedisCluster, Redirections) {
  auto r = parse_redirect("MOVED 3999 127.0.0.1:6381", "h");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->type, redirect::kind::moved);
  EXPECT_EQ(r->slot, 3999u);
  EXPECT_EQ(r->host, "127.0.0.1");
  EXPECT_EQ(r->port, 6381);
  // No host: the node that answered; ASK; brackets around IPv6.
  r = parse_redirect("-ASK 16383 :7000", "10.1.2.3");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->type, redirect::kind::ask);
  EXPECT_EQ(r->slot, 16383u);
  EXPECT_EQ(r->host, "10.1.2.3");
  r = parse_redirect("MOVED 1 [::1]:7001", "h");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->host, "::1");
  EXPECT_EQ(r->port, 7001);
  for (const char* bad : {"ERR unknown command", "MOVED", "MOVED 3999", "MOVED x 1.2.3.4:5",
                          "MOVED 16384 h:1", "MOVED 1 h:0", "MOVED 1 h:70000", "MOVED 1 h",
                          "MOVED -1 h:1", "TRYAGAIN", "CLUSTERDOWN The cluster is down"})
    EXPECT_FALSE(parse_redirect(bad, "h")) << bad;
}

TEST(RedisCluster, ShardsReplyByKeyName) {
  // Two shards; in the second, the primary names no endpoint (the host we asked), a replica is
  // still loading and one node is unknown ("?").
  const std::string resp =
      "*2\r\n"
      "*4\r\n" +
      bulk("slots") + "*4\r\n" + integer(0) + integer(99) + integer(200) + integer(300) +
      bulk("nodes") + "*1\r\n" + node("a1", "127.0.0.1", 7100, 7200, "master", "online") +
      "*4\r\n" + bulk("nodes") + "*3\r\n" + node("b1", "", 7101, 0, "master", "online") +
      node("b2", "127.0.0.2", 7102, 0, "replica", "loading") +
      node("b3", "?", 7103, 0, "replica", "online") + bulk("slots") + "*2\r\n" + integer(100) +
      integer(199);
  const reply_ptr reply = parse_resp(resp);
  std::string error;
  const auto map = cluster_map::from_shards(reply.get(), "node.example", false, &error);
  ASSERT_TRUE(map) << error;
  ASSERT_EQ(map->shards().size(), 2u);
  EXPECT_EQ(map->covered(), 100u + 101u + 100u);
  EXPECT_EQ(map->primary_for(0)->address(), "127.0.0.1:7100");
  EXPECT_EQ(map->primary_for(250)->id, "a1");
  EXPECT_EQ(map->primary_for(150)->address(), "node.example:7101");
  EXPECT_EQ(map->primary_for(301), nullptr);  // uncovered
  EXPECT_EQ(map->primary_for(cluster_slots), nullptr);
  EXPECT_EQ(map->shards()[1].nodes.size(), 2u);  // "?" is not dialled
  EXPECT_FALSE(map->shards()[1].nodes[1].usable());
  EXPECT_EQ(map->primaries().size(), 2u);
  // Read for TLS: the TLS port, and a node without one is not usable.
  const auto tls = cluster_map::from_shards(reply.get(), "node.example", true);
  ASSERT_TRUE(tls);
  EXPECT_EQ(tls->primary_for(0)->port, 7200);
  EXPECT_EQ(tls->primary_for(150), nullptr);

  // Not a shards reply: clear errors, no crash.
  for (const std::string& bad :
       {std::string("+OK\r\n"), std::string("*1\r\n:1\r\n"),
        "*1\r\n*4\r\n" + bulk("slots") + "*1\r\n" + integer(1) + bulk("nodes") + "*0\r\n",
        "*1\r\n*4\r\n" + bulk("slots") + "*2\r\n" + integer(5) + integer(16384) + bulk("nodes") +
            "*0\r\n"}) {
    const reply_ptr r = parse_resp(bad);
    EXPECT_FALSE(cluster_map::from_shards(r.get(), "h", false, &error));
    EXPECT_FALSE(error.empty());
  }
  EXPECT_EQ(cluster_map().primary_for(0), nullptr);
  EXPECT_EQ(cluster_map().covered(), 0u);
}

reply_ptr command(redisContext* c, const std::vector<std::string>& args) {
  return test::redis_call(c, args);
}

TEST(RedisCluster, MapOfARealClusterRoutesEveryKeyToItsOwner) {
  test::redis_cluster cluster(3);
  std::set<int> ports;
  std::vector<std::unique_ptr<redisContext, void (*)(redisContext*)>> conns;
  for (const auto& n : cluster.nodes()) {
    ports.insert(n->port());
    conns.emplace_back(redisConnect("127.0.0.1", n->port()), redisFree);
    ASSERT_TRUE(conns.back() && !conns.back()->err);
  }
  const reply_ptr shards = command(conns[0].get(), {"CLUSTER", "SHARDS"});
  std::string error;
  const auto map = cluster_map::from_shards(shards.get(), "127.0.0.1", false, &error);
  ASSERT_TRUE(map) << error;
  EXPECT_EQ(map->covered(), cluster_slots);
  ASSERT_EQ(map->primaries().size(), 3u);
  for (const auto* p : map->primaries())
    EXPECT_TRUE(ports.count(p->port)) << p->address();

  const auto conn_for = [&](int port) {
    std::size_t i = 0;
    for (const auto& n : cluster.nodes()) {
      if (n->port() == port) return conns[i].get();
      ++i;
    }
    return static_cast<redisContext*>(nullptr);
  };
  std::vector<std::string> keys{"{user1000}.following", "herald:channel:news", "123456789"};
  for (int i = 0; i < 200; ++i)
    keys.push_back("key:" + std::to_string(i));
  for (const auto& key : keys) {
    // Our slot is Redis's.
    const reply_ptr slot = command(conns[0].get(), {"CLUSTER", "KEYSLOT", key});
    ASSERT_EQ(slot->type, REDIS_REPLY_INTEGER);
    EXPECT_EQ(static_cast<unsigned>(slot->integer), key_slot(key)) << key;
    // The owner in our map serves it; another node redirects there.
    const cluster_node* owner = map->primary_for_key(key);
    ASSERT_NE(owner, nullptr);
    const reply_ptr served = command(conn_for(owner->port), {"SET", key, "v"});
    EXPECT_EQ(served->type, REDIS_REPLY_STATUS) << key;
    const int other =
        *std::find_if(ports.begin(), ports.end(), [&](int p) { return p != owner->port; });
    const reply_ptr moved = command(conn_for(other), {"GET", key});
    ASSERT_EQ(moved->type, REDIS_REPLY_ERROR);
    const auto r = parse_redirect(std::string_view(moved->str, moved->len), "127.0.0.1");
    ASSERT_TRUE(r) << moved->str;
    EXPECT_EQ(r->slot, key_slot(key));
    EXPECT_EQ(r->port, owner->port);
  }
}

using namespace std::chrono_literals;

class ClusterClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = std::make_unique<test::redis_cluster>(3);
    cluster_client::options o;
    o.seeds.push_back(
        *endpoint::parse("redis://127.0.0.1:" + std::to_string(cluster_->nodes()[0]->port())));
    cluster_client::callbacks cb;
    cb.on_ready = [this] { ++ready_events_; };
    cb.on_lost = [this](const std::string&) { ++lost_events_; };
    cb.on_topology = [this](const cluster_map& map) {
      if (subscriber_) subscriber_->place(map);
    };
    client_ = std::make_shared<cluster_client>(ioc_, o, cb);
    client_->start();
    ASSERT_TRUE(run_until([&] { return client_->ready(); }));
  }
  void TearDown() override {
    if (subscriber_) subscriber_->stop();
    if (client_) client_->stop();
    ioc_.run_for(10ms);
  }

  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      ioc_.run_for(5ms);
    }
    return true;
  }

  // The reply to one command through the client, as text ("(nil)", "OK", "ERR ...").
  std::string call(const std::string& key, std::vector<std::string> args) {
    std::optional<std::string> out;
    client_->command(key, std::move(args), [&](reply_view r) {
      if (!r)
        out = "(null)";
      else if (r->type == REDIS_REPLY_NIL)
        out = "(nil)";
      else if (r->type == REDIS_REPLY_INTEGER)
        out = std::to_string(r->integer);
      else
        out = std::string(r->str, r->len);
    });
    EXPECT_TRUE(run_until([&] { return out.has_value(); }));
    return out.value_or("(timeout)");
  }

  int port_of_slot_owner(unsigned slot) { return client_->map().primary_for(slot)->port; }

  // A slot on its way from its owner to another primary, by hand, as redis-cli --cluster
  // reshard does: IMPORTING on the target, MIGRATING on the source.
  struct migration {
    unsigned slot = 0;
    int from = 0, to = 0;
    std::string to_id;
  };
  migration begin_migration(std::string_view key) {
    migration m;
    m.slot = key_slot(key);
    m.from = port_of_slot_owner(m.slot);
    for (const auto& n : cluster_->nodes()) {
      if (n->port() != m.from) {
        m.to = n->port();
        break;
      }
    }
    const std::string from_id = cli(m.from, "CLUSTER MYID");
    m.to_id = cli(m.to, "CLUSTER MYID");
    EXPECT_EQ(cli(m.to, "CLUSTER SETSLOT " + std::to_string(m.slot) + " IMPORTING " + from_id),
              "OK");
    EXPECT_EQ(cli(m.from, "CLUSTER SETSLOT " + std::to_string(m.slot) + " MIGRATING " + m.to_id),
              "OK");
    return m;
  }
  // The slot is the target's, on every node.
  void finish_migration(const migration& m) {
    for (const auto& n : cluster_->nodes())
      EXPECT_EQ(cli(n->port(), "CLUSTER SETSLOT " + std::to_string(m.slot) + " NODE " + m.to_id),
                "OK");
  }
  static std::string cli(int port, const std::string& args) {
    std::string out = test::redis_cluster::cli(port, args);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
      out.pop_back();
    return out;
  }

  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{
      ioc_.get_executor()};
  std::unique_ptr<test::redis_cluster> cluster_;
  std::shared_ptr<cluster_client> client_;
  std::shared_ptr<cluster_subscriber> subscriber_;
  int ready_events_ = 0;
  int lost_events_ = 0;
};

TEST_F(ClusterClientTest, RoutesEveryKeyAndLoadsFunctionsOnEveryPrimary) {
  EXPECT_EQ(ready_events_, 1);
  EXPECT_EQ(client_->map().primaries().size(), 3u);
  // 300 keys at once, pipelined over the three primaries.
  int stored = 0, answered = 0;
  for (int i = 0; i < 300; ++i) {
    const std::string key = "k" + std::to_string(i);
    client_->command(key, {"SET", key, std::to_string(i)}, [&](reply_view r) {
      ++answered;
      stored += r && r->type == REDIS_REPLY_STATUS;
    });
  }
  ASSERT_TRUE(run_until([&] { return answered == 300; }));
  EXPECT_EQ(stored, 300);
  EXPECT_EQ(client_->redirects(), 0u);  // every command went to its owner at once
  // What Redis holds, asked of the owner directly.
  EXPECT_EQ(cli(port_of_slot_owner(key_slot("k7")), "GET k7"), "7");
  // FUNCTION LOAD reaches every primary (Redis does not spread it across shards), so a
  // function works for keys in every slot.
  std::optional<std::pair<std::size_t, std::size_t>> loaded;
  client_->on_each_primary(
      {"FUNCTION", "LOAD", "REPLACE",
       "#!lua name=clustertest\nredis.register_function('ct_get', function(keys) return "
       "redis.call('GET', keys[1]) end)"},
      [&](std::size_t ok, std::size_t failed) { loaded = std::pair(ok, failed); });
  ASSERT_TRUE(run_until([&] { return loaded.has_value(); }));
  EXPECT_EQ(*loaded, (std::pair<std::size_t, std::size_t>(3, 0)));
  std::set<int> owners;
  for (int i = 0; i < 30; ++i) {
    const std::string key = "k" + std::to_string(i);
    EXPECT_EQ(call(key, {"FCALL", "ct_get", "1", key}), std::to_string(i));
    owners.insert(port_of_slot_owner(key_slot(key)));
  }
  EXPECT_EQ(owners.size(), 3u);
}

TEST_F(ClusterClientTest, FollowsAskDuringAMigrationAndMovedAfterIt) {
  // Move the slot of {mig} from its owner A to another primary B.
  ASSERT_EQ(call("{mig}old", {"SET", "{mig}old", "v1"}), "OK");
  const migration m = begin_migration("{mig}");
  const unsigned slot = m.slot;
  const int a = m.from, b = m.to;

  // During the migration: a key A does not have is answered -ASK; the client asks B behind
  // ASKING, and the map does not change.
  const auto refreshes = client_->refreshes();
  EXPECT_EQ(call("{mig}new", {"SET", "{mig}new", "v2"}), "OK");
  EXPECT_EQ(cli(b, "CLUSTER COUNTKEYSINSLOT " + std::to_string(slot)), "1");  // stored on B
  EXPECT_GE(client_->redirects(), 1u);
  EXPECT_EQ(client_->refreshes(), refreshes);
  EXPECT_EQ(port_of_slot_owner(slot), a);
  // A key A still has is served by A.
  EXPECT_EQ(call("{mig}old", {"GET", "{mig}old"}), "v1");

  // Finish: move the key, give the slot to B everywhere. A now answers -MOVED; the client
  // reads the map again and follows.
  EXPECT_EQ(cli(a, "MIGRATE 127.0.0.1 " + std::to_string(b) + " \"\" 0 5000 KEYS {mig}old"), "OK");
  finish_migration(m);
  const auto redirects = client_->redirects();
  EXPECT_EQ(call("{mig}old", {"GET", "{mig}old"}), "v1");
  EXPECT_EQ(call("{mig}new", {"GET", "{mig}new"}), "v2");
  EXPECT_GT(client_->redirects(), redirects);
  ASSERT_TRUE(run_until([&] { return port_of_slot_owner(slot) == b; }));
  EXPECT_GT(client_->refreshes(), refreshes);
  // From now on straight to B.
  const auto settled = client_->redirects();
  EXPECT_EQ(call("{mig}old", {"GET", "{mig}old"}), "v1");
  EXPECT_EQ(client_->redirects(), settled);
  EXPECT_TRUE(client_->ready());
}

TEST_F(ClusterClientTest, ALostPrimaryIsReportedAndCommandsFailInsteadOfHanging) {
  const unsigned slot = key_slot("gone");
  const int owner = port_of_slot_owner(slot);
  for (const auto& n : cluster_->nodes()) {
    if (n->port() == owner) n->kill();
  }
  ASSERT_TRUE(run_until([&] { return !client_->ready(); }));
  EXPECT_EQ(lost_events_, 1);
  // No replica can take over: the command fails (null) once no node can serve it, bounded.
  const std::string r = call("gone", {"GET", "gone"});
  EXPECT_TRUE(r == "(null)" || r.starts_with("CLUSTERDOWN")) << r;
}

TEST_F(ClusterClientTest, ShardedPubSubFollowsItsSlotWhenItMoves) {
  std::vector<std::pair<std::string, std::string>> got;
  std::vector<std::string> interrupted, subscribed;
  cluster_subscriber::callbacks cb;
  cb.on_message = [&](std::string_view ch, std::string_view m) {
    got.emplace_back(std::string(ch), std::string(m));
  };
  cb.on_subscribed = [&](const std::string& ch) { subscribed.push_back(ch); };
  cb.on_interrupted = [&](const std::string& ch) { interrupted.push_back(ch); };
  cb.need_topology = [this] { client_->refresh(); };
  subscriber_ = std::make_shared<cluster_subscriber>(ioc_, redis_connection::options{}, cb);
  subscriber_->place(client_->map());
  std::vector<std::string> channels{"{mv}room"};
  for (int i = 0; i < 30; ++i)
    channels.push_back("room:" + std::to_string(i));
  for (const auto& ch : channels)
    subscriber_->subscribe(ch);
  ASSERT_TRUE(run_until([&] {
    return std::all_of(channels.begin(), channels.end(),
                       [&](const std::string& c) { return subscriber_->receiving(c); });
  }));
  // SPUBLISH goes to the slot's owner; each subscriber hears it once.
  for (const auto& ch : channels)
    EXPECT_EQ(call(ch, {"SPUBLISH", ch, "hello " + ch}), "1") << ch;
  ASSERT_TRUE(run_until([&] { return got.size() == channels.size(); }));
  ioc_.run_for(50ms);
  EXPECT_EQ(got.size(), channels.size());
  for (std::size_t i = 0; i < channels.size(); ++i)
    EXPECT_EQ(got[i], (std::pair(channels[i], "hello " + channels[i])));

  // Move the slot of {mv} to another primary. Redis drops the subscription with a bare
  // sunsubscribe (no MOVED); the channel is reported interrupted, the map is read again, and
  // it is subscribed on the new owner.
  const migration m = begin_migration("{mv}room");
  const unsigned slot = m.slot;
  const int b = m.to;
  finish_migration(m);
  ASSERT_TRUE(run_until([&] { return !interrupted.empty(); }));
  EXPECT_EQ(interrupted, std::vector<std::string>{"{mv}room"});
  ASSERT_TRUE(run_until(
      [&] { return subscriber_->receiving("{mv}room") && port_of_slot_owner(slot) == b; }));
  EXPECT_EQ(std::count(subscribed.begin(), subscribed.end(), "{mv}room"), 2);
  got.clear();
  EXPECT_EQ(call("{mv}room", {"SPUBLISH", "{mv}room", "after the move"}), "1");
  EXPECT_EQ(call("room:1", {"SPUBLISH", "room:1", "others unaffected"}), "1");
  ASSERT_TRUE(run_until([&] { return got.size() == 2; }));
  EXPECT_EQ(got[0], (std::pair<std::string, std::string>("{mv}room", "after the move")));

  // Unsubscribing: nothing more arrives.
  subscriber_->unsubscribe("room:1");
  ASSERT_TRUE(run_until([&] { return call("room:1", {"SPUBLISH", "room:1", "x"}) == "0"; }));
}

}  // namespace
}  // namespace herald::redis
