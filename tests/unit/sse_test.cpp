// The SSE fallback's wire format without sockets: events as the WHATWG parser reads them, the
// positions a stream's event id carries (and what a hostile Last-Event-ID turns into), and the
// channels named in a stream's URL.
#include <gtest/gtest.h>

#include "herald/protocol/sse.hpp"

namespace herald::protocol::sse {
namespace {

std::string event(std::string_view name, std::string_view id, std::string_view data) {
  std::string out;
  append_event(out, name, id, data);
  return out;
}

TEST(Sse, EventsSplitLinesIntoDataFields) {
  EXPECT_EQ(event({}, {}, R"({"a":1})"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(event("close", {}, "x"), "event: close\ndata: x\n\n");
  EXPECT_EQ(event({}, "news~e1~4", "m"), "id: news~e1~4\ndata: m\n\n");
  // LF, CRLF and CR each start a data line: EventSource joins them back with LF.
  EXPECT_EQ(event({}, {}, "a\nb\r\nc\rd"), "data: a\ndata: b\ndata: c\ndata: d\n\n");
  EXPECT_EQ(event({}, {}, "end\n"), "data: end\ndata: \n\n");
  EXPECT_EQ(event({}, {}, ""), "data: \n\n");
}

TEST(Sse, PositionsRoundTrip) {
  const positions p{{"news", {"5fe3930c84995f68", 42}}, {"$inbox", {"ab", 0}}, {"a:b@c", {"", 7}}};
  const auto id = encode_positions(p);
  EXPECT_EQ(id, "$inbox~ab~0,a:b@c~~7,news~5fe3930c84995f68~42");
  EXPECT_EQ(decode_positions(id), p);
}

TEST(Sse, HostileLastEventIdsYieldOnlyWellFormedItems) {
  EXPECT_TRUE(decode_positions("").empty());
  EXPECT_TRUE(decode_positions("garbage").empty());
  EXPECT_TRUE(decode_positions("~e~1").empty());                         // no channel
  EXPECT_TRUE(decode_positions("news~e~").empty());                      // no offset
  EXPECT_TRUE(decode_positions("news~e~-1").empty());                    // not a number
  EXPECT_TRUE(decode_positions("news~e~1x").empty());                    // trailing junk
  EXPECT_TRUE(decode_positions("news~e~99999999999999999999").empty());  // overflow
  EXPECT_EQ(decode_positions(",,news~e~3,bad,"), (positions{{"news", {"e", 3}}}));
  std::string many;
  for (int i = 0; i < 1000; ++i)
    many += "c" + std::to_string(i) + "~e~1,";
  EXPECT_EQ(decode_positions(many, 256).size(), 256u);
}

TEST(Sse, ChannelsFromTheQuery) {
  EXPECT_EQ(query_values("/sse?channel=a&x=1&channel=b%2Fc&channel=&channel", "channel"),
            (std::vector<std::string>{"a", "b/c"}));
  EXPECT_TRUE(query_values("/sse", "channel").empty());
  EXPECT_EQ(query_values("/sse?ch%61nnel=z", "channel"), (std::vector<std::string>{"z"}));
}

}  // namespace
}  // namespace herald::protocol::sse
