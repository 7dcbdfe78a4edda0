#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "herald/common/url.hpp"
#include "herald/routing/event.hpp"

namespace herald {
namespace {

using nlohmann::json;

connection_info sample_connection() {
  connection_info c;
  c.id = *connection_id::parse("L0SM9cOFvHcCIhw_abcd");
  c.connected_at = 1742085982306;
  c.set_source_ip("203.0.113.7");
  c.set_user_agent("Mozilla/5.0");
  c.set_host("ws.example.com");
  return c;
}

json build(event_input in, const connection_info& c, const routing_config& r) {
  in.conn = &c;
  in.routing = &r;
  in.request_id = "XDmGEE2RoE0FRdQ_";
  in.request_time = 1742085982306;
  return json::parse(build_event(in));
}

TEST(Event, ClfTimeMatchesApiGateway) {
  // From a captured API Gateway CONNECT event: requestTimeEpoch 1742085982306.
  EXPECT_EQ(clf_time(1742085982306), "16/Mar/2025:00:46:22 +0000");
  EXPECT_EQ(clf_time(0), "01/Jan/1970:00:00:00 +0000");
}

TEST(Event, RequestContextCarriesEveryApiGatewayField) {
  const auto c = sample_connection();
  routing_config r;
  r.stage = "production";
  r.api_id = "abc123";
  event_input in;
  in.type = event_type::message;
  in.route_key = "sendmessage";
  in.message_id = "msg-1";
  in.body = R"({"action":"sendmessage"})";
  const json e = build(in, c, r);
  const json& ctx = e["requestContext"];
  EXPECT_EQ(ctx["routeKey"], "sendmessage");
  EXPECT_EQ(ctx["eventType"], "MESSAGE");
  EXPECT_EQ(ctx["messageId"], "msg-1");
  EXPECT_EQ(ctx["requestId"], "XDmGEE2RoE0FRdQ_");
  EXPECT_EQ(ctx["extendedRequestId"], "XDmGEE2RoE0FRdQ_");
  EXPECT_EQ(ctx["requestTime"], "16/Mar/2025:00:46:22 +0000");
  EXPECT_EQ(ctx["requestTimeEpoch"], 1742085982306);
  EXPECT_EQ(ctx["connectedAt"], 1742085982306);
  EXPECT_EQ(ctx["messageDirection"], "IN");
  EXPECT_EQ(ctx["stage"], "production");
  EXPECT_EQ(ctx["apiId"], "abc123");
  EXPECT_EQ(ctx["domainName"], "ws.example.com");
  EXPECT_EQ(ctx["connectionId"], "L0SM9cOFvHcCIhw_abcd");
  EXPECT_EQ(ctx["identity"], (json{{"sourceIp", "203.0.113.7"}, {"userAgent", "Mozilla/5.0"}}));
  EXPECT_FALSE(ctx.contains("authorizer"));
  EXPECT_EQ(e["body"], R"({"action":"sendmessage"})");
  EXPECT_EQ(e["isBase64Encoded"], false);
  EXPECT_FALSE(e.contains("headers"));
}

TEST(Event, ConnectHasHeadersAndQueryParameters) {
  const auto c = sample_connection();
  routing_config r;
  connect_request req;
  req.target = "/?token=a%20b&x=1&x=2&flag";
  req.headers = {{"Host", "ws.example.com"}, {"X-Multi", "one"}, {"X-Multi", "two"}};
  event_input in;
  in.type = event_type::connect;
  in.route_key = "$connect";
  in.request = &req;
  const json e = build(in, c, r);
  EXPECT_EQ(e["requestContext"]["eventType"], "CONNECT");
  EXPECT_FALSE(e["requestContext"].contains("messageId"));
  EXPECT_EQ(e["headers"]["X-Multi"], "two");
  EXPECT_EQ(e["multiValueHeaders"]["X-Multi"], (json{"one", "two"}));
  EXPECT_EQ(e["queryStringParameters"], (json{{"token", "a b"}, {"x", "2"}, {"flag", ""}}));
  EXPECT_EQ(e["multiValueQueryStringParameters"]["x"], (json{"1", "2"}));
  EXPECT_FALSE(e.contains("body"));
}

TEST(Event, ConnectWithoutQueryHasNoQueryFields) {
  const auto c = sample_connection();
  routing_config r;
  connect_request req;
  req.target = "/";
  event_input in;
  in.type = event_type::connect;
  in.request = &req;
  const json e = build(in, c, r);
  EXPECT_FALSE(e.contains("queryStringParameters"));
  EXPECT_FALSE(e.contains("multiValueQueryStringParameters"));
}

TEST(Event, DisconnectHasCodeReasonAndSyntheticHeaders) {
  const auto c = sample_connection();
  routing_config r;
  r.domain_name = "api.example.com";  // overrides the Host header
  event_input in;
  in.type = event_type::disconnect;
  in.route_key = "$disconnect";
  in.disconnect_code = 1001;
  in.disconnect_reason = "idle timeout";
  const json e = build(in, c, r);
  EXPECT_EQ(e["requestContext"]["disconnectStatusCode"], 1001);
  EXPECT_EQ(e["requestContext"]["disconnectReason"], "idle timeout");
  EXPECT_EQ(e["requestContext"]["domainName"], "api.example.com");
  EXPECT_EQ(e["headers"], (json{{"Host", "api.example.com"},
                                {"x-api-key", ""},
                                {"X-Forwarded-For", "203.0.113.7"},
                                {"x-restapi", ""}}));
}

TEST(Event, AuthorizerContextIsPassedAsStrings) {
  auto c = sample_connection();
  c.authorizer = std::make_shared<const string_pairs>(
      string_pairs{{"principalId", "user-1"}, {"tier", "gold"}});
  routing_config r;
  event_input in;
  const json e = build(in, c, r);
  EXPECT_EQ(e["requestContext"]["authorizer"], (json{{"principalId", "user-1"}, {"tier", "gold"}}));
}

TEST(Event, InvalidUtf8InHeadersDoesNotBreakTheEvent) {
  const auto c = sample_connection();
  routing_config r;
  connect_request req;
  req.target = "/?q=%FF";
  req.headers = {{"X-Bad", "\xff\xfe"}};
  event_input in;
  in.type = event_type::connect;
  in.request = &req;
  EXPECT_NO_THROW(build(in, c, r));
}

TEST(Event, ConnectDropsHopByHopHeadersAnAuthorizerStillSees) {
  const auto c = sample_connection();
  routing_config r;
  connect_request req;
  req.target = "/";
  req.headers = {{"Host", "ws.example.com"},
                 {"connection", "Upgrade"},
                 {"Upgrade", "websocket"},
                 {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}};
  event_input in;
  in.type = event_type::connect;
  in.request = &req;
  json e = build(in, c, r);
  EXPECT_EQ(e["headers"],
            (json{{"Host", "ws.example.com"}, {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}}));
  EXPECT_FALSE(e["multiValueHeaders"].contains("Upgrade"));
  in.method_arn = "arn:aws:execute-api:local:000000000000:herald/default/$connect";
  e = build(in, c, r);
  EXPECT_EQ(e["headers"]["connection"], "Upgrade");
  EXPECT_EQ(e["headers"]["Upgrade"], "websocket");
}

TEST(Event, IdentityHasUserAgentOnlyWhenSent) {
  auto c = sample_connection();
  c.set_user_agent({});
  routing_config r;
  const json e = build({}, c, r);
  EXPECT_EQ(e["requestContext"]["identity"], (json{{"sourceIp", "203.0.113.7"}}));
}

TEST(Event, ForwardingHeadersNameTheRealClient) {
  const char* trace = "Root=1-65abc123-0123456789abcdef01234567";
  // A client's own X-Forwarded-* are replaced, whatever their case.
  string_pairs h = {{"Host", "h"},
                    {"x-forwarded-for", "6.6.6.6"},
                    {"X-Forwarded-Proto", "gopher"},
                    {"X-FORWARDED-PORT", "1"}};
  add_forwarding_headers(h, {"203.0.113.7", false, true, 8443, trace});
  EXPECT_EQ(h, (string_pairs{{"Host", "h"},
                             {"X-Amzn-Trace-Id", trace},
                             {"X-Forwarded-For", "203.0.113.7"},
                             {"X-Forwarded-Port", "8443"},
                             {"X-Forwarded-Proto", "https"}}));
  // Behind a trusted proxy: its scheme and port (the first of a list), and its trace id.
  h = {{"X-Forwarded-Proto", "https, http"},
       {"X-Forwarded-Port", "443"},
       {"X-Amzn-Trace-Id", "Root=1-1-2"}};
  add_forwarding_headers(h, {"198.51.100.7", true, false, 8080, trace});
  EXPECT_EQ(h, (string_pairs{{"X-Amzn-Trace-Id", "Root=1-1-2"},
                             {"X-Forwarded-For", "198.51.100.7"},
                             {"X-Forwarded-Port", "443"},
                             {"X-Forwarded-Proto", "https"}}));
}

TEST(Event, TraceIdHasAwsShape) {
  const unsigned char random[12] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
                                    0xcd, 0xef, 0x00, 0x11, 0x22, 0xff};
  EXPECT_EQ(make_trace_id(1705751697419, random), "Root=1-65abb491-0123456789abcdef001122ff");
}

TEST(Event, HostWithoutPort) {
  EXPECT_EQ(host_without_port("chat.example.com:8080"), "chat.example.com");
  EXPECT_EQ(host_without_port("chat.example.com"), "chat.example.com");
  EXPECT_EQ(host_without_port("127.0.0.1:1"), "127.0.0.1");
  EXPECT_EQ(host_without_port("[::1]:8080"), "[::1]");
  EXPECT_EQ(host_without_port("[::1]"), "[::1]");
  EXPECT_EQ(host_without_port("::1"), "::1");
  EXPECT_EQ(host_without_port(""), "");
}

TEST(Event, UrlDecode) {
  EXPECT_EQ(url_decode("a%20b+c"), "a b c");
  EXPECT_EQ(url_decode("%zz%4"), "%zz%4");
  EXPECT_EQ(url_decode("%41%42"), "AB");
}

}  // namespace
}  // namespace herald
