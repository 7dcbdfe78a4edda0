#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "herald/common/json_input.hpp"

namespace herald {
namespace {

std::string nested(std::size_t depth, const std::string& inner = "") {
  return std::string(depth, '[') + inner + std::string(depth, ']');
}

TEST(JsonInput, DepthIsCountedPerLevelOfArraysAndObjects) {
  json_status st{};
  EXPECT_EQ(parse_json("1", 0, &st), 1);
  EXPECT_EQ(st, json_status::ok);
  EXPECT_FALSE(parse_json("[1]", 1, &st).is_discarded());
  EXPECT_TRUE(parse_json("[[1]]", 1, &st).is_discarded());
  EXPECT_EQ(st, json_status::too_deep);
  EXPECT_FALSE(parse_json(R"({"a":{"b":[1,{"c":2}]}})", 4, &st).is_discarded());
  EXPECT_TRUE(parse_json(R"({"a":{"b":[1,{"c":2}]}})", 3, &st).is_discarded());
  EXPECT_EQ(st, json_status::too_deep);
  // Siblings do not add up: depth is the deepest path, not the count of containers.
  EXPECT_FALSE(parse_json("[[1],[2],[3],{\"a\":1}]", 2, &st).is_discarded());
  EXPECT_FALSE(parse_json(nested(64), default_json_max_depth, &st).is_discarded());
  EXPECT_TRUE(parse_json(nested(65), default_json_max_depth, &st).is_discarded());
  EXPECT_EQ(describe(st, 64), "JSON nested deeper than 64 levels");
}

TEST(JsonInput, InvalidIsNotTooDeep) {
  json_status st{};
  EXPECT_TRUE(parse_json("{\"a\":", 64, &st).is_discarded());
  EXPECT_EQ(st, json_status::invalid);
  EXPECT_TRUE(parse_json("[1] trailing", 64, &st).is_discarded());
  EXPECT_EQ(st, json_status::invalid);
  EXPECT_TRUE(parse_json("", 64, &st).is_discarded());
  EXPECT_EQ(st, json_status::invalid);
  // Too deep wins even when the rest would not parse: nothing past the bound is read.
  EXPECT_TRUE(parse_json(nested(100000).substr(0, 150000) + "garbage", 64, &st).is_discarded());
  EXPECT_EQ(st, json_status::too_deep);
}

TEST(JsonInput, HugeDepthsAreRefusedWithoutRecursion) {
  json_status st{};
  // 1,000,000 levels: a recursive reader (or dump) would overflow any stack.
  const std::string deep = nested(1000000);
  EXPECT_TRUE(parse_json(deep, 64, &st).is_discarded());
  EXPECT_EQ(st, json_status::too_deep);
  std::string objects;
  for (int i = 0; i < 200000; ++i)
    objects += "{\"k\":";
  objects += "0" + std::string(200000, '}');
  EXPECT_TRUE(parse_json(objects, 64, &st).is_discarded());
  EXPECT_EQ(st, json_status::too_deep);
  // Wide is fine (the size limits of each entry point bound it).
  std::string wide = "[";
  for (int i = 0; i < 100000; ++i)
    wide += i ? ",{}" : "{}";
  wide += "]";
  EXPECT_EQ(parse_json(wide, 2, &st).size(), 100000u);
  EXPECT_EQ(st, json_status::ok);
}

TEST(JsonInput, CommentsOnlyWhenAsked) {
  json_status st{};
  EXPECT_TRUE(parse_json("// x\n{\"a\":1}", 64, &st).is_discarded());
  EXPECT_EQ(parse_json("// x\n{\"a\":1}", 64, &st, true)["a"], 1);
}

TEST(JsonInput, OrderedKeepsMemberOrder) {
  json_status st{};
  const auto doc = parse_ordered_json(R"({"z":1,"a":2})", 64, &st);
  EXPECT_EQ(doc.dump(), R"({"z":1,"a":2})");
  EXPECT_TRUE(parse_ordered_json(nested(70), 64, &st).is_discarded());
  EXPECT_EQ(st, json_status::too_deep);
}

}  // namespace
}  // namespace herald
