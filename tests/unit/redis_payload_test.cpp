#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "redis/redis_backplane.hpp"

namespace herald::redis {
namespace {

TEST(RedisPayload, EnvelopesAndBareData) {
  auto in = parse_payload(
      R"({"data":{"n":1},"id":"p-1","exclude":"AAAAAAAAAAAAAAAAAAAA","origin":"node-a"})", 64);
  EXPECT_EQ(in.data_json, R"({"n":1})");
  EXPECT_EQ(in.id, "p-1");
  EXPECT_EQ(in.exclude, "AAAAAAAAAAAAAAAAAAAA");
  EXPECT_EQ(in.origin, "node-a");
  // Bare JSON is the data itself.
  in = parse_payload(R"([1,2,3])", 64);
  EXPECT_EQ(in.data_json, "[1,2,3]");
  EXPECT_TRUE(in.origin.empty());
  // An object with "data" and other fields is not an envelope: all of it is the data.
  in = parse_payload(R"({"data":1,"user":"x"})", 64);
  EXPECT_EQ(in.data_json, R"({"data":1,"user":"x"})");
  // Text that is not JSON becomes a JSON string.
  in = parse_payload("hello \"world\"", 64);
  EXPECT_EQ(in.data_json, R"("hello \"world\"")");
  in = parse_payload(std::string("bad \xff utf8"), 64);
  EXPECT_EQ(in.data_json, "\"bad \xEF\xBF\xBD utf8\"");
  in = parse_payload("", 64);
  EXPECT_EQ(in.data_json, R"("")");
  // Non-string id/exclude/origin are ignored rather than trusted.
  in = parse_payload(R"({"data":true,"origin":42})", 64);
  EXPECT_EQ(in.data_json, "true");
  EXPECT_TRUE(in.origin.empty());
}

TEST(RedisPayload, HistoryAndPresenceEnvelopes) {
  auto in = parse_payload(R"({"origin":"","offset":17,"epoch":"e1","data":{"n":1}})", 64);
  EXPECT_EQ(in.offset, 17u);
  EXPECT_EQ(in.epoch, "e1");
  EXPECT_EQ(in.data_json, R"({"n":1})");
  in = parse_payload(R"({"origin":"a","event":"join","data":{"connectionId":"x"}})", 64);
  EXPECT_EQ(in.event, "join");
  EXPECT_EQ(in.offset, 0u);
  // Only known events; a negative or textual offset is no offset.
  in = parse_payload(R"({"event":"explode","offset":-3,"data":1})", 64);
  EXPECT_TRUE(in.event.empty());
  EXPECT_EQ(in.offset, 0u);
  in = parse_payload(R"({"offset":"5","data":1})", 64);
  EXPECT_EQ(in.offset, 0u);
}

// Deeper than the bound: refused before anything recurses over it (dump would).
TEST(RedisPayload, EnvelopesRoundTrip) {
  const std::string e = make_envelope({"node-1", "n-1", "abc", "join", R"({"a":[1,"\u00e9"]})"});
  EXPECT_EQ(
      e,
      R"({"origin":"node-1","id":"n-1","exclude":"abc","event":"join","data":{"a":[1,"\u00e9"]}})");
  const incoming in = parse_payload(e, 64);
  EXPECT_EQ(in.origin, "node-1");
  EXPECT_EQ(in.id, "n-1");
  EXPECT_EQ(in.exclude, "abc");
  EXPECT_EQ(in.event, "join");
  EXPECT_EQ(nlohmann::json::parse(in.data_json), nlohmann::json::parse(R"({"a":[1,"\u00e9"]})"));
  // Only what is set; strings escaped.
  const std::string bare = make_envelope({"n\"2", "", "", "", "7"});
  EXPECT_EQ(bare, R"({"origin":"n\"2","data":7})");
  EXPECT_EQ(parse_payload(bare, 64).origin, "n\"2");
}

TEST(RedisPayload, DeepPayloadsAreRefused) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto in = parse_payload(deep, 64);
  EXPECT_EQ(in.refused, "too_deep");
  EXPECT_TRUE(in.data_json.empty());
  in = parse_payload(R"({"data":)" + deep + "}", 64);
  EXPECT_EQ(in.refused, "too_deep");
  // At the bound: delivered.
  const std::string ok = std::string(64, '[') + std::string(64, ']');
  in = parse_payload(ok, 64);
  EXPECT_TRUE(in.refused.empty());
  EXPECT_EQ(in.data_json, ok);
  // Wide is fine: 50,000 members at depth 1.
  std::string wide = "[";
  for (int i = 0; i < 50000; ++i)
    wide += i ? ",0" : "0";
  wide += "]";
  in = parse_payload(wide, 64);
  EXPECT_TRUE(in.refused.empty());
  EXPECT_EQ(in.data_json, wide);
}

TEST(RedisPayload, NodeMessagesAreReadLeniently) {
  auto op = parse_node_op(
      R"({"op":"send","connection":"c1","rid":9,"reply":"n2","binary":true,"payload":"aGk="})", 64);
  EXPECT_EQ(op.op, "send");
  EXPECT_EQ(op.connection, "c1");
  EXPECT_EQ(op.rid, 9u);
  EXPECT_EQ(op.reply, "n2");
  EXPECT_TRUE(op.binary);
  EXPECT_EQ(op.payload, "aGk=");
  op = parse_node_op(R"({"op":"close_user","user":"u","code":4001,"reason":"r","origin":"n"})", 64);
  EXPECT_EQ(op.user, "u");
  EXPECT_EQ(op.code, 4001);
  EXPECT_EQ(op.reason, "r");
  EXPECT_EQ(op.origin, "n");

  // Every member of another type reads as its default; nothing throws.
  op = parse_node_op(
      R"({"op":5,"connection":{},"rid":-1,"nonce":"x","reply":7,"binary":"yes","user":[],"reason":1,"origin":null})",
      64);
  EXPECT_EQ(op.op, "");
  EXPECT_EQ(op.connection, "");
  EXPECT_EQ(op.rid, 0u);
  EXPECT_EQ(op.nonce, 0u);
  EXPECT_FALSE(op.binary);
  EXPECT_EQ(op.user, "");
  for (const char* text : {"[1]", "7", "not json", "", "{\"op\":"})
    EXPECT_EQ(parse_node_op(text, 64).op, "") << text;
  // A send without a string payload is not a send.
  EXPECT_EQ(parse_node_op(R"({"op":"send","connection":"c1","payload":{"a":1}})", 64).op, "");
  EXPECT_EQ(parse_node_op(R"({"op":"send","connection":"c1"})", 64).op, "");
  // Close codes a client may not receive (reserved, out of range, not integers) read as 1000.
  for (const char* code : {"1005", "1006", "999", "5000", "70000", "-1", "4000.5", "\"4000\""}) {
    EXPECT_EQ(parse_node_op(std::string(R"({"op":"close","code":)") + code + "}", 64).code, 1000)
        << code;
  }
  EXPECT_EQ(parse_node_op(R"({"op":"close","code":4999})", 64).code, 4999);
  EXPECT_EQ(parse_node_op(std::string(100, '[') + std::string(100, ']'), 64).op, "");
}

}  // namespace
}  // namespace herald::redis
