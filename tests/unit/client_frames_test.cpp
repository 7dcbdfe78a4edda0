// The client protocol's wire format, pinned both ways: each frame below is what the builder
// produces, byte for byte, and (where the documentation shows it) appears verbatim in docs/.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "herald/protocol/client_frames.hpp"

namespace herald::protocol {
namespace {

std::string docs() {
  std::string all;
  for (const char* name : {"protocol.md", "durability.md", "routing.md"}) {
    std::ifstream in(std::string(HERALD_SOURCE_DIR) + "/docs/" + name);
    std::stringstream ss;
    ss << in.rdbuf();
    all += ss.str();
  }
  return all;
}

// Built exactly as documented, and the documentation shows exactly this.
void documented(const std::string& built, const std::string& expected) {
  static const std::string text = docs();
  EXPECT_EQ(built, expected);
  EXPECT_NE(text.find(expected), std::string::npos) << "not in docs/: " << expected;
  EXPECT_TRUE(nlohmann::json::accept(built)) << built;
}

TEST(ClientFrames, MessagesAsDocumented) {
  documented(message("news", R"({"headline":"Herald ships"})"),
             R"({"type":"message","channel":"news","data":{"headline":"Herald ships"}})");
  documented(message("", R"("hi alice")", "n-1"),
             R"({"type":"message","id":"n-1","data":"hi alice"})");
  documented(
      message("orders.42", R"({"status":"shipped"})", "", 17, "6b02a60a3d5be"),
      R"({"type":"message","channel":"orders.42","offset":17,"epoch":"6b02a60a3d5be","data":{"status":"shipped"}})");
}

TEST(ClientFrames, RepliesAsDocumented) {
  documented(subscribed("news", "7"), R"({"type":"subscribed","channel":"news","id":7})");
  documented(unsubscribed("news", "8"), R"({"type":"unsubscribed","channel":"news","id":8})");
  subscribed_reply resumed;
  resumed.at = position{23, "6b02a60a3d5be"};
  resumed.recovered = true;
  documented(
      subscribed("orders.42", "1", resumed),
      R"({"type":"subscribed","channel":"orders.42","id":1,"offset":23,"epoch":"6b02a60a3d5be","recovered":true})");
  documented(acked("$inbox", "", 2), R"({"type":"acked","channel":"$inbox","offset":2})");
  documented(heartbeat("7"), R"({"type":"heartbeat","id":7})");
  documented(
      presence("room.1", {{"...", "alice"}, {"...", ""}}, false, "5"),
      R"({"type":"presence","channel":"room.1","members":[{"connectionId":"...","userId":"alice"},{"connectionId":"...","userId":null}],"truncated":false,"id":5})");
  // Not shown in full in the docs: the same shape with the stored position.
  EXPECT_EQ(published("orders.42", R"("p-1")", position{24, "e1"}),
            R"({"type":"published","channel":"orders.42","id":"p-1","offset":24,"epoch":"e1"})");
  EXPECT_EQ(published("news", ""), R"({"type":"published","channel":"news"})");
  subscribed_reply unreadable;
  unreadable.history_error = "Redis unavailable";
  unreadable.recovered = false;
  EXPECT_EQ(subscribed("c", "", unreadable),
            R"({"type":"subscribed","channel":"c","recovered":false,"error":"Redis unavailable"})");
}

TEST(ClientFrames, ErrorsAsDocumented) {
  documented(
      error("bad_request", "message nested deeper than 64 levels"),
      R"({"type":"error","code":"bad_request","message":"message nested deeper than 64 levels"})");
  documented(
      error("invalid_channel", "channel names may contain only A-Z a-z 0-9 and . _ - : @ / = +", "",
            "7"),
      R"({"type":"error","code":"invalid_channel","message":"channel names may contain only A-Z a-z 0-9 and . _ - : @ / = +","id":7})");
  documented(
      error("too_many_subscriptions", "a connection may subscribe to 128 channels", "news", "7"),
      R"({"type":"error","code":"too_many_subscriptions","message":"a connection may subscribe to 128 channels","channel":"news","id":7})");
  for (const char* m : {"Forbidden", "Internal server error", "Too many requests"}) {
    documented(gateway_error(m, "aV1Dm9PLCR1rVxBbyyyY", "fO7nvN3k3Z-Oz0Gf"),
               std::string(R"({"message":")") + m +
                   R"(","connectionId":"aV1Dm9PLCR1rVxBbyyyY","requestId":"fO7nvN3k3Z-Oz0Gf"})");
  }
}

TEST(ClientFrames, PushedFramesAsDocumented) {
  documented(
      resync("orders.42", "6b0e7c2a41f19", 0,
             "the channel's history was lost while this node could not follow it; messages "
             "published before it may be missing"),
      R"({"type":"resync","channel":"orders.42","epoch":"6b0e7c2a41f19","offset":0,"reason":"the channel's history was lost while this node could not follow it; messages published before it may be missing"})");
  EXPECT_EQ(resync("c", "", 0, "r"), R"({"type":"resync","channel":"c","offset":0,"reason":"r"})");
  documented(
      presence_change("join", "room.1", member_info("...", "alice")),
      R"({"type":"join","channel":"room.1","info":{"connectionId":"...","userId":"alice"}})");
  documented(
      presence_change("leave", "room.1", member_info("...", "alice")),
      R"({"type":"leave","channel":"room.1","info":{"connectionId":"...","userId":"alice"}})");
  documented(stored_ack("Jx3...", "1732262400000-0"),
             R"({"type":"ack","requestId":"Jx3...","entry":"1732262400000-0"})");
  EXPECT_EQ(
      not_stored("r1"),
      R"({"type":"error","code":"unavailable","message":"the message was not stored; send it again","requestId":"r1"})");
}

TEST(ClientFrames, StringsAreEscaped) {
  const std::string f = error("bad_request", "a \"quoted\"\\ line\nand a tab\t\x01", "c");
  EXPECT_EQ(
      f,
      R"({"type":"error","code":"bad_request","message":"a \"quoted\"\\ line\nand a tab\t\u0001","channel":"c"})");
  EXPECT_EQ(nlohmann::json::parse(f)["message"], "a \"quoted\"\\ line\nand a tab\t\x01");
  EXPECT_EQ(nlohmann::json::parse(message("c", "1", "é\"")).at("id"), "é\"");
}

nlohmann::json doc(const char* text) {
  return nlohmann::json::parse(text);
}

TEST(ClientRequests, ChannelActions) {
  auto r = parse_channel_request(
      doc(R"({"action":"subscribe","channel":"news","id":7,"since":"12","epoch":"e"})"),
      channel_verb::subscribe);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->channel, "news");
  EXPECT_EQ(r->id_json, "7");
  EXPECT_EQ(r->since, 12u);
  EXPECT_EQ(r->epoch, "e");
  EXPECT_FALSE(r->field_error);

  r = parse_channel_request(doc(R"({"channel":"news","since":5,"id":"a"})"),
                            channel_verb::subscribe);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->since, 5u);
  EXPECT_EQ(r->id_json, R"("a")");
  r = parse_channel_request(doc(R"({"channel":"news","since":null})"), channel_verb::subscribe);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->since);
  EXPECT_FALSE(r->field_error);

  // The channel must be a string; everything else is reported after the channel is checked.
  EXPECT_FALSE(parse_channel_request(doc(R"({"channel":5})"), channel_verb::subscribe));
  EXPECT_FALSE(parse_channel_request(doc(R"([1,2])"), channel_verb::subscribe));
  EXPECT_FALSE(parse_channel_request(doc(R"({"action":"subscribe"})"), channel_verb::unsubscribe));

  const auto field_error = [](const char* text, channel_verb v) {
    const auto req = parse_channel_request(nlohmann::json::parse(text), v);
    return req && req->field_error ? *req->field_error : std::string();
  };
  EXPECT_EQ(field_error(R"({"channel":"c","since":-1})", channel_verb::subscribe),
            R"("since" must be an offset (a non-negative integer))");
  EXPECT_EQ(field_error(R"({"channel":"c","since":"1x"})", channel_verb::subscribe),
            R"("since" must be an offset (a non-negative integer))");
  EXPECT_EQ(field_error(R"({"channel":"c","since":1.5})", channel_verb::subscribe),
            R"("since" must be an offset (a non-negative integer))");
  EXPECT_EQ(field_error(R"({"channel":"c","epoch":7})", channel_verb::subscribe),
            R"("epoch" must be a string)");
  EXPECT_EQ(field_error(R"({"channel":"$inbox"})", channel_verb::ack), R"("offset" is required)");
  EXPECT_EQ(field_error(R"({"channel":"$inbox","offset":"x"})", channel_verb::ack),
            R"("offset" must be an offset (a non-negative integer))");
  EXPECT_EQ(field_error(R"({"channel":"c"})", channel_verb::publish), R"("data" is required)");
  EXPECT_EQ(field_error(R"({"channel":"c","data":null})", channel_verb::publish), "");
  EXPECT_EQ(field_error(R"({"channel":"c","since":"x"})", channel_verb::unsubscribe), "");

  r = parse_channel_request(doc(R"({"channel":"c","data":{"a":[1,"x"]}})"), channel_verb::publish);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->data_json, R"({"a":[1,"x"]})");
  r = parse_channel_request(doc(R"({"channel":"$inbox","offset":"9223372036854775807"})"),
                            channel_verb::ack);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->since, 9223372036854775807ull);
}

TEST(ClientRequests, RequestIdsAreStringsOrIntegers) {
  EXPECT_EQ(request_id_json(doc(R"({"id":7})")), "7");
  EXPECT_EQ(request_id_json(doc(R"({"id":"x\"y"})")), R"("x\"y")");
  EXPECT_EQ(request_id_json(doc(R"({"id":1.5})")), "");
  EXPECT_EQ(request_id_json(doc(R"({"id":{"a":1}})")), "");
  EXPECT_EQ(request_id_json(doc(R"("id")")), "");
}

TEST(ClientRequests, Offsets) {
  EXPECT_EQ(parse_offset("0"), 0u);
  EXPECT_EQ(parse_offset("1234567890123456789"), 1234567890123456789u);
  EXPECT_FALSE(parse_offset(""));
  EXPECT_FALSE(parse_offset("12345678901234567890"));  // 20 digits
  EXPECT_FALSE(parse_offset("-1"));
  EXPECT_FALSE(parse_offset(" 1"));
}

}  // namespace
}  // namespace herald::protocol
