#include <gtest/gtest.h>

#include "herald/common/json_input.hpp"
#include "herald/routing/route_selector.hpp"

namespace herald {
namespace {

std::optional<std::string> select(std::string_view expression, std::string_view body) {
  return route_selector(expression).select(body, herald::default_json_max_depth);
}

// The table in API Gateway's developer guide (apigateway-websocket-api-selection-expressions),
// evaluated against {"service":"chat","action":"join"}.
TEST(RouteSelector, AwsDocumentedExamples) {
  const std::string body = R"({"service":"chat","action":"join"})";
  EXPECT_EQ(select("$request.body.action", body), "join");
  EXPECT_EQ(select("${request.body.service}/${request.body.action}", body), "chat/join");
  EXPECT_EQ(select("${request.body.action}-${request.body.invalidPath}", body), "join-");
  EXPECT_EQ(select("action", body), "action");
  EXPECT_EQ(select("\\$default", body), "$default");
}

TEST(RouteSelector, MissingPathIsEmpty) {
  EXPECT_EQ(select("$request.body.action", R"({"other":1})"), "");
  EXPECT_EQ(select("$request.body.a.b.c", R"({"a":{"b":{}}})"), "");
  EXPECT_EQ(select("$request.body.a.b", R"({"a":"not an object"})"), "");
  EXPECT_EQ(select("$request.body.items[5]", R"({"items":[1]})"), "");
  EXPECT_EQ(select("$request.body.action", R"([1,2])"), "");
}

TEST(RouteSelector, NestedPathsAndIndexes) {
  const std::string body =
      R"({"meta":{"route":{"name":"orders"}},"items":[{"type":"a"},{"type":"b"}],
                               "matrix":[[1,2],[3,4]]})";
  EXPECT_EQ(select("$request.body.meta.route.name", body), "orders");
  EXPECT_EQ(select("$request.body.items[1].type", body), "b");
  EXPECT_EQ(select("$request.body.matrix[1][0]", body), "3");
  EXPECT_EQ(select("${request.body.meta.route.name}:${request.body.items[0].type}", body),
            "orders:a");
}

TEST(RouteSelector, ValuesAreStringified) {
  EXPECT_EQ(select("$request.body.v", R"({"v":42})"), "42");
  EXPECT_EQ(select("$request.body.v", R"({"v":-1.5})"), "-1.5");
  EXPECT_EQ(select("$request.body.v", R"({"v":true})"), "true");
  EXPECT_EQ(select("$request.body.v", R"({"v":null})"), "");
  EXPECT_EQ(select("$request.body.v", R"({"v":["item1","item2"]})"), "[item1, item2]");
  EXPECT_EQ(select("$request.body.v", R"({"v":{"k":1}})"), R"({"k":1})");
  EXPECT_EQ(select("$request.body.v", R"({"v":"with spaces and ünïcode"})"),
            "with spaces and ünïcode");
}

TEST(RouteSelector, NonJsonBodiesCannotBeEvaluated) {
  EXPECT_EQ(select("$request.body.action", "hello"), std::nullopt);
  EXPECT_EQ(select("$request.body.action", ""), std::nullopt);
  EXPECT_EQ(select("$request.body.action", R"({"action": "join")"), std::nullopt);
  EXPECT_EQ(select("${request.body.a}/x", "not json"), std::nullopt);
  // A static expression needs no body.
  EXPECT_EQ(select("always", "not json"), "always");
}

TEST(RouteSelector, EscapesAndLiterals) {
  EXPECT_EQ(select("\\$connect-${request.body.a}", R"({"a":"x"})"), "$connect-x");
  EXPECT_EQ(select("v1/${request.body.a}/end", R"({"a":"mid"})"), "v1/mid/end");
  EXPECT_EQ(select("back\\slash", "{}"), "back\\slash");  // a backslash not before '$' stays
  EXPECT_TRUE(route_selector("plain").is_static());
  EXPECT_FALSE(route_selector("$request.body.a").is_static());
}

TEST(RouteSelector, MalformedExpressionsAreRejected) {
  for (const char* bad : {"$request.body.", "${request.body.a", "${request.header.x}", "$default",
                          "prefix-$request.body.a", "${request.body.a..b}", "${request.body.a[x]}",
                          "${request.body.a[]}", "$request.body.a.", "${}"}) {
    EXPECT_THROW(route_selector{bad}, std::invalid_argument) << bad;
  }
}

TEST(RouteSelector, SurvivesHostileBodies) {
  const route_selector s("$request.body.a.b[3].c");
  const std::string deep = std::string(10000, '[') + std::string(10000, ']');
  EXPECT_EQ(s.select(deep, default_json_max_depth), std::nullopt);  // too deep: not evaluated
  EXPECT_EQ(s.select(std::string("{\"a\":\0}", 7), default_json_max_depth), std::nullopt);
  EXPECT_EQ(s.select("{\"a\":\"\\ud800\"}", default_json_max_depth),
            std::nullopt);  // lone surrogate escape: not valid JSON text
}

// The crash of issue 22: an array-valued action nested 50,000 deep was printed recursively.
TEST(RouteSelector, DeeplyNestedValuesAreRefusedNotPrinted) {
  const route_selector s("$request.body.action");
  for (const std::size_t depth : {63UL, 64UL, 65UL, 50000UL, 200000UL}) {
    const std::string body =
        "{\"action\":" + std::string(depth, '[') + std::string(depth, ']') + "}";
    const auto key = s.select(body, default_json_max_depth);
    if (depth + 1 <= default_json_max_depth) {
      EXPECT_EQ(key, std::string(depth, '[') + std::string(depth, ']')) << depth;
    } else {
      EXPECT_EQ(key, std::nullopt) << depth;
    }
  }
  // Objects as values are printed by nlohmann's dump(): bounded the same way.
  std::string obj;
  for (int i = 0; i < 100000; ++i)
    obj += "{\"a\":";
  obj += "1" + std::string(100000, '}');
  EXPECT_EQ(s.select("{\"action\":" + obj + "}", default_json_max_depth), std::nullopt);
}

}  // namespace
}  // namespace herald
