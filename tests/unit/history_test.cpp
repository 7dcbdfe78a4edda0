// Channel history: the in-memory store of the local backplane, the continuity rule a resuming
// subscriber is judged by, and the Redis functions (loaded into a real redis-server and called
// the way backends call them).
#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "herald/delivery/channel_policy.hpp"
#include "herald/delivery/history.hpp"
#include "redis/redis_functions.hpp"
#include "support/hiredis_sync.hpp"
#include "support/redis_server.hpp"

namespace herald {
namespace {

using namespace std::chrono_literals;

history_rule rule(std::size_t size, duration ttl = std::chrono::hours(1)) {
  return {"orders.*", size, ttl};
}

TEST(MemoryHistory, NumbersPublicationsFromOneAndKeepsTheNewest) {
  config cfg;
  memory_history h(cfg);
  const auto r = rule(3);
  std::string epoch;
  for (int i = 1; i <= 5; ++i) {
    const auto s = h.append("orders.1", r, std::to_string(i), "", "", 1000 + i);
    ASSERT_TRUE(s.ok);
    EXPECT_EQ(s.offset, static_cast<std::uint64_t>(i));
    EXPECT_FALSE(s.duplicate);
    if (epoch.empty()) epoch = s.epoch;
    EXPECT_EQ(s.epoch, epoch);
  }
  history_query q{"orders.1", 0, false, 100};
  const auto page = h.read(q, r, 2000);
  ASSERT_TRUE(page.ok);
  EXPECT_EQ(page.top, 5u);
  ASSERT_EQ(page.entries.size(), 3u);  // size 3: 3, 4, 5
  EXPECT_EQ(page.entries.front().offset, 3u);
  EXPECT_EQ(page.entries.back().data_json, "5");
  // From 0 the history is no longer continuous (1 and 2 were trimmed); from 2 it is.
  EXPECT_FALSE(history_continuous(page, epoch, 100));
  q.since = 2;
  EXPECT_TRUE(history_continuous(h.read(q, r, 2000), epoch, 100));
  // A different epoch never is; nor a gap longer than the limit.
  EXPECT_FALSE(history_continuous(h.read(q, r, 2000), "other", 100));
  EXPECT_FALSE(history_continuous(h.read(q, r, 2000), epoch, 2));
  // Up to date: continuous with nothing to send.
  q.since = 5;
  const auto now = h.read(q, r, 2000);
  EXPECT_TRUE(now.entries.empty());
  EXPECT_TRUE(history_continuous(now, epoch, 100));
  // Ahead of the history (a client from another life of it): not continuous.
  q.since = 9;
  EXPECT_FALSE(history_continuous(h.read(q, r, 2000), "", 100));
}

TEST(MemoryHistory, IdempotencyKeysStoreOnce) {
  config cfg;
  cfg.history.idempotency_ttl = 1000ms;
  memory_history h(cfg);
  const auto r = rule(10);
  const auto a = h.append("orders.1", r, "1", "", "key-1", 1000);
  const auto b = h.append("orders.1", r, "1", "", "key-1", 1500);
  EXPECT_FALSE(a.duplicate);
  EXPECT_TRUE(b.duplicate);
  EXPECT_EQ(b.offset, a.offset);
  EXPECT_EQ(h.read({"orders.1", 0, false, 10}, r, 1500).entries.size(), 1u);
  // After the key's lifetime the same key stores again.
  const auto c = h.append("orders.1", r, "1", "", "key-1", 2600);
  EXPECT_FALSE(c.duplicate);
  EXPECT_EQ(c.offset, 2u);
}

TEST(MemoryHistory, ExpiredHistoryStartsANewEpoch) {
  config cfg;
  memory_history h(cfg);
  const auto r = rule(10, 1000ms);
  const auto first = h.append("orders.1", r, "1", "", "", 1000);
  h.append("orders.1", r, "2", "", "", 1500);
  // Entries older than the ttl are not read back even while the channel lives.
  EXPECT_EQ(h.read({"orders.1", 0, false, 10}, r, 2200).entries.size(), 1u);
  // Nothing published for longer than the ttl: the history is gone, and says so.
  EXPECT_EQ(h.read({"orders.1", 0, false, 10}, r, 2600).epoch, "");
  const auto again = h.append("orders.1", r, "3", "", "", 2700);
  EXPECT_EQ(again.offset, 1u);
  EXPECT_NE(again.epoch, first.epoch);
}

TEST(MemoryHistory, AcknowledgementsOnlyMoveForward) {
  config cfg;
  memory_history h(cfg);
  const auto r = rule(10);
  for (int i = 0; i < 4; ++i)
    h.append("$inbox:alice", r, "1", "", "", 1000);
  EXPECT_EQ(h.ack("$inbox:alice", 2), 2u);
  EXPECT_EQ(h.ack("$inbox:alice", 1), 2u);
  EXPECT_EQ(h.ack("$inbox:alice", 99), 4u);  // never past the newest
  EXPECT_EQ(h.ack("$inbox:bob", 1), 0u);
  history_query q{"$inbox:alice", std::nullopt, true, 10};
  h.ack("$inbox:alice", 0);
  const auto page = h.read(q, r, 1000);
  EXPECT_EQ(page.from, 4u);
  EXPECT_TRUE(page.entries.empty());
}

TEST(HistoryRules, FirstMatchAndTheInbox) {
  config cfg;
  cfg.history.rules = {{"orders.*", 5, 1s}, {"*", 7, 1s}};
  EXPECT_EQ(find_history_rule(cfg, "orders.1")->size, 5u);
  EXPECT_EQ(find_history_rule(cfg, "news")->size, 7u);
  EXPECT_EQ(find_history_rule(cfg, "$inbox:alice"), nullptr);  // the inbox is off
  cfg.inbox.enabled = true;
  EXPECT_EQ(find_history_rule(cfg, "$inbox:alice"), &cfg.inbox.rule);
  EXPECT_EQ(display_channel("$inbox:alice"), "$inbox");
  EXPECT_EQ(display_channel("orders.1"), "orders.1");
}

TEST(HistoryRules, GlobsBecomeAnchoredLuaPatterns) {
  EXPECT_EQ(glob_to_lua_pattern("orders.*"), "^orders%..*$");
  EXPECT_EQ(glob_to_lua_pattern("a-b+c?"), "^a%-b%+c.$");
  EXPECT_EQ(glob_to_lua_pattern("$inbox:*"), "^%$inbox:.*$");
}

TEST(HistoryRules, Offsets) {
  EXPECT_EQ(parse_offset("0"), 0u);
  EXPECT_EQ(parse_offset("18446744073709551"), 18446744073709551u);
  EXPECT_FALSE(parse_offset(""));
  EXPECT_FALSE(parse_offset("-1"));
  EXPECT_FALSE(parse_offset("1e3"));
  EXPECT_FALSE(parse_offset("12345678901234567890"));
}

// ---- the Redis functions -----------------------------------------------------------------

using test::reply_ptr;

class RedisFunctions : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<test::redis_server>();
    ctx_ = redisConnectUnix(server_->socket_path().c_str());
    ASSERT_TRUE(ctx_ && !ctx_->err);
    cfg_.history.rules = {{"orders.*", 3, std::chrono::hours(1)}};
    cfg_.inbox.enabled = true;
    ASSERT_EQ(call({"FUNCTION", "LOAD", "REPLACE", redis::function_library(cfg_)})->type,
              REDIS_REPLY_STRING);
  }
  void TearDown() override {
    if (ctx_) redisFree(ctx_);
  }

  reply_ptr call(const std::vector<std::string>& args) { return test::redis_call(ctx_, args); }

  config cfg_;
  std::unique_ptr<test::redis_server> server_;
  redisContext* ctx_ = nullptr;
};

TEST_F(RedisFunctions, PublishStoresWithOffsetsAndPublishesTheEnvelope) {
  // A subscriber on another connection sees the envelope Herald nodes read.
  redisContext* sub = redisConnectUnix(server_->socket_path().c_str());
  ASSERT_TRUE(sub && !sub->err);
  freeReplyObject(redisCommand(sub, "SUBSCRIBE herald:channel:orders.1"));

  auto r = call({"FCALL", "herald_publish", "0", "orders.1", R"({"n":1})", "id-1"});
  ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(r->element[0]->integer, 1);
  const std::string epoch(r->element[1]->str, r->element[1]->len);
  EXPECT_FALSE(epoch.empty());
  EXPECT_EQ(r->element[2]->integer, 0);

  redisReply* msg = nullptr;
  ASSERT_EQ(redisGetReply(sub, reinterpret_cast<void**>(&msg)), REDIS_OK);
  const auto env = nlohmann::json::parse(std::string(msg->element[2]->str, msg->element[2]->len));
  freeReplyObject(msg);
  redisFree(sub);
  EXPECT_EQ(env["offset"], 1);
  EXPECT_EQ(env["epoch"], epoch);
  EXPECT_EQ(env["id"], "id-1");
  EXPECT_EQ(env["data"], nlohmann::json({{"n", 1}}));

  // Text that is not JSON is stored as a JSON string.
  call({"FCALL", "herald_publish", "0", "orders.1", "plain text"});
  for (int i = 3; i <= 5; ++i)
    call({"FCALL", "herald_publish", "0", "orders.1", std::to_string(i)});
  auto h = call({"FCALL", "herald_history", "0", "orders.1", "0", "10"});
  ASSERT_EQ(h->type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(std::string(h->element[0]->str), epoch);
  EXPECT_EQ(h->element[1]->integer, 5);  // top
  EXPECT_EQ(h->elements, 4u + 3 * 4);    // size 3: offsets 3, 4, 5
  EXPECT_EQ(h->element[4]->integer, 3);
  EXPECT_EQ(std::string(h->element[7]->str), "3");
  // Position only.
  h = call({"FCALL", "herald_history", "0", "orders.1", "", "10"});
  EXPECT_EQ(h->elements, 4u);
  // No history for channels no rule names: published, not stored.
  r = call({"FCALL", "herald_publish", "0", "news", R"("x")"});
  EXPECT_EQ(r->element[0]->integer, 0);
  EXPECT_EQ(call({"EXISTS", "herald:history:news"})->integer, 0);
}

TEST_F(RedisFunctions, IdempotencyKeysAndANewEpochAfterLoss) {
  auto a = call({"FCALL", "herald_publish", "0", "orders.1", "1", "", "k"});
  auto b = call({"FCALL", "herald_publish", "0", "orders.1", "1", "", "k"});
  EXPECT_EQ(b->element[0]->integer, a->element[0]->integer);
  EXPECT_EQ(b->element[2]->integer, 1);
  EXPECT_EQ(call({"XLEN", "herald:history:orders.1"})->integer, 1);
  const std::string first(a->element[1]->str);
  // The history is lost (as after a Redis restart without persistence).
  call({"DEL", "herald:history:orders.1", "herald:history-meta:orders.1"});
  usleep(2000);  // epochs are made of the server time in microseconds
  auto c = call({"FCALL", "herald_publish", "0", "orders.1", "2"});
  EXPECT_EQ(c->element[0]->integer, 1);
  EXPECT_NE(std::string(c->element[1]->str), first);
}

// The settings live in the library: a keyspace emptied under Herald (FLUSHALL, eviction, a DEL)
// does not switch history off, for Herald or for backends.
TEST_F(RedisFunctions, SettingsSurviveFlushall) {
  call({"FCALL", "herald_publish", "0", "orders.1", "1"});
  ASSERT_EQ(call({"FLUSHALL"})->type, REDIS_REPLY_STATUS);
  auto r = call({"FCALL", "herald_publish", "0", "orders.1", "2"});
  ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(r->element[0]->integer, 1);  // stored, in a new epoch
  EXPECT_EQ(call({"XLEN", "herald:history:orders.1"})->integer, 1);
  // Herald's own calls name size and ttl: stored even on a channel the library has no rule for.
  r = call({"FCALL", "herald_publish", "0", "other", "3", "", "", "", "n1", "5", "60000"});
  ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(r->element[0]->integer, 1);
  EXPECT_EQ(call({"PTTL", "herald:history:other"})->integer > 50000, true);
  EXPECT_EQ(call({"FCALL", "herald_publish", "0", "other", "3", "", "", "", "n1", "x", "1"})->type,
            REDIS_REPLY_ERROR);
}

// What no client could receive is not stored: larger than websocket.max_message_bytes, or
// nested deeper than limits.json_max_depth (also deeper than cjson decodes).
TEST_F(RedisFunctions, OversizedAndDeepDataAreRefused) {
  const std::string big = "\"" + std::string(cfg_.websocket.max_message_bytes, 'x') + "\"";
  auto r = call({"FCALL", "herald_publish", "0", "orders.1", big});
  ASSERT_EQ(r->type, REDIS_REPLY_ERROR);
  EXPECT_NE(std::string(r->str).find("websocket.max_message_bytes"), std::string::npos) << r->str;
  for (const std::size_t d : {65UL, 2000UL}) {
    r = call(
        {"FCALL", "herald_publish", "0", "orders.1", std::string(d, '[') + std::string(d, ']')});
    ASSERT_EQ(r->type, REDIS_REPLY_ERROR) << d;
    EXPECT_NE(std::string(r->str).find("nested deeper than 64"), std::string::npos) << r->str;
  }
  r = call(
      {"FCALL", "herald_publish", "0", "orders.1", std::string(64, '[') + std::string(64, ']')});
  EXPECT_EQ(r->type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(call({"XLEN", "herald:history:orders.1"})->integer, 1);
}

TEST_F(RedisFunctions, InboxAcknowledgements) {
  for (int i = 0; i < 3; ++i)
    call({"FCALL", "herald_publish", "0", "$inbox:alice", "1"});
  EXPECT_EQ(call({"FCALL", "herald_ack", "0", "$inbox:alice", "2"})->integer, 2);
  EXPECT_EQ(call({"FCALL", "herald_ack", "0", "$inbox:alice", "1"})->integer, 2);
  EXPECT_EQ(call({"FCALL", "herald_ack", "0", "$inbox:alice", "9"})->integer, 3);
  auto h = call({"FCALL", "herald_history", "0", "$inbox:alice", "ack", "10"});
  EXPECT_EQ(h->element[2]->integer, 3);
  EXPECT_EQ(h->element[3]->integer, 3);
  EXPECT_EQ(h->elements, 4u);
  EXPECT_EQ(call({"FCALL", "herald_ack", "0", "$inbox:nobody", "1"})->integer, 0);
  // Errors name the usage instead of failing obscurely.
  const auto bad = call({"FCALL", "herald_ack", "0", "$inbox:alice", "x"});
  EXPECT_EQ(bad->type, REDIS_REPLY_ERROR);
}

TEST(RedisFunctionNames, OtherPrefixesGetTheirOwnLibrary) {
  EXPECT_EQ(redis::names_for("herald").publish, "herald_publish");
  const auto n = redis::names_for("app:prod");
  EXPECT_EQ(n.library, "herald_app_prod");
  EXPECT_EQ(n.publish, "herald_publish_app_prod");
  config cfg;
  cfg.redis.key_prefix = "app:prod";
  EXPECT_NE(redis::function_library(cfg).find("'app:prod:'"), std::string::npos);
}

}  // namespace
}  // namespace herald
