#include <gtest/gtest.h>

#include "herald/common/json_input.hpp"
#include "integrations/http_client.hpp"
#include "integrations/http_integration.hpp"

namespace herald::net {
namespace {

TEST(Url, ParsesSchemesHostsPortsAndTargets) {
  auto u = parse_url("http://backend:9000/events?x=1");
  ASSERT_TRUE(u);
  EXPECT_FALSE(u->tls);
  EXPECT_EQ(u->host, "backend");
  EXPECT_EQ(u->port, "9000");
  EXPECT_EQ(u->target, "/events?x=1");
  EXPECT_EQ(u->host_header, "backend:9000");
  u = parse_url("https://api.example.com");
  ASSERT_TRUE(u);
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->port, "443");
  EXPECT_EQ(u->target, "/");
  u = parse_url("http://[::1]:8080/x");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, "8080");
  u = parse_url("http://h?q");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->target, "/?q");
  for (const char* bad :
       {"ftp://x", "http://", "http://:80/", "http://user@h/", "http://h:99999/", "http://h:x/"}) {
    EXPECT_FALSE(parse_url(bad)) << bad;
  }
}

struct reply {
  int status;
  std::string body;
  string_pairs headers = {};
};

integration_result interpret_response(response_mode mode, reply r) {
  return interpret_http_answer(mode, r.status, std::move(r.headers), std::move(r.body),
                               default_json_max_depth);
}

TEST(HttpIntegration, LambdaProxyResultsAreUnwrapped) {
  auto r = interpret_response(
      response_mode::lambda_proxy,
      reply(200, R"({"statusCode":403,"headers":{"X-A":"1","N":2},"body":"nope"})"));
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "nope");
  EXPECT_TRUE(r.has_body);
  EXPECT_EQ(find_header(r.headers, "x-a"), "1");
  EXPECT_EQ(find_header(r.headers, "n"), "2");

  r = interpret_response(
      response_mode::lambda_proxy,
      reply(200, R"({"statusCode":200,"body":"AAEC/w==","isBase64Encoded":true})"));
  EXPECT_TRUE(r.binary);
  EXPECT_EQ(r.body, std::string("\x00\x01\x02\xff", 4));

  r = interpret_response(response_mode::lambda_proxy, reply(200, R"({"statusCode":200})"));
  EXPECT_FALSE(r.has_body);

  r = interpret_response(
      response_mode::lambda_proxy,
      reply(200, R"({"statusCode":200,"multiValueHeaders":{"Set":["a","b"]},"body":{"k":1}})"));
  EXPECT_EQ(r.body, R"({"k":1})");
  EXPECT_EQ(r.headers.size(), 2u);
}

TEST(HttpIntegration, AnythingElseIsThePlainBody) {
  auto r = interpret_response(response_mode::lambda_proxy, reply(200, "just text"));
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.body, "just text");
  r = interpret_response(response_mode::http, reply(200, R"({"statusCode":401})"));
  EXPECT_EQ(r.status, 200);  // http mode does not look inside
  EXPECT_EQ(r.body, R"({"statusCode":401})");
  r = interpret_response(response_mode::http, reply(401, "", {{"WWW-Authenticate", "Bearer"}}));
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.status, 401);
  EXPECT_FALSE(r.has_body);
}

TEST(HttpIntegration, FailuresAreFailures) {
  EXPECT_FALSE(interpret_response(response_mode::http, reply(502, "bad gateway")).ok);
  EXPECT_FALSE(interpret_response(response_mode::lambda_proxy, reply(500, "")).ok);
  EXPECT_FALSE(
      interpret_response(response_mode::lambda_proxy, reply(200, R"({"statusCode":"x"})")).ok);
  EXPECT_FALSE(
      interpret_response(response_mode::lambda_proxy, reply(200, R"({"statusCode":99})")).ok);
  EXPECT_FALSE(
      interpret_response(response_mode::lambda_proxy,
                         reply(200, R"({"statusCode":200,"body":"%%%","isBase64Encoded":true})"))
          .ok);
}

// A Lambda proxy result nested too deep is a failed call, never recursed over.
TEST(HttpIntegration, DeepLambdaResultsFail) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto r = interpret_response(response_mode::lambda_proxy,
                              reply(200, R"({"statusCode":200,"body":)" + deep + "}"));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("nested deeper than 64"), std::string::npos) << r.error;
  // In http mode the body is passed on as bytes: nothing parses it.
  r = interpret_response(response_mode::http, reply(200, deep));
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.body, deep);
}

}  // namespace
}  // namespace herald::net
