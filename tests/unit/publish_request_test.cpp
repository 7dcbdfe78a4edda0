// POST /v1/publish bodies, read without a server: every rule, and that a refused batch
// yields nothing to deliver.
#include <variant>

#include <gtest/gtest.h>

#include "herald/admin/publish_request.hpp"
#include "herald/delivery/connection_id.hpp"

namespace herald {
namespace {

config test_config() {
  config cfg;
  cfg.history.rules.push_back({"orders.*", 10, std::chrono::hours(1)});
  cfg.inbox.enabled = true;
  cfg.admin.max_batch = 3;
  cfg.websocket.max_message_bytes = 200;
  return cfg;
}

publish_request accepted(std::string_view body, std::string_view key = {}) {
  const config cfg = test_config();
  auto r = parse_publish_request(body, key, cfg);
  if (auto* no = std::get_if<publish_refusal>(&r)) {
    ADD_FAILURE() << body << " refused: " << no->message;
    return {};
  }
  return std::get<publish_request>(std::move(r));
}

publish_refusal refused(std::string_view body, std::string_view key = {}) {
  const config cfg = test_config();
  auto r = parse_publish_request(body, key, cfg);
  if (!std::holds_alternative<publish_refusal>(r)) {
    ADD_FAILURE() << body << " was accepted";
    return {};
  }
  return std::get<publish_refusal>(std::move(r));
}

TEST(PublishRequest, OnePublicationOfEachKind) {
  auto r = accepted(R"({"channel":"news","data":{"a":1},"id":"n-1"})");
  ASSERT_EQ(r.publications.size(), 1u);
  EXPECT_FALSE(r.batch);
  const publication& p = r.publications[0];
  EXPECT_EQ(p.kind, target_kind::channel);
  EXPECT_EQ(p.target, "news");
  EXPECT_EQ(p.data_json, R"({"a":1})");
  EXPECT_EQ(p.payload->bytes(), R"({"type":"message","channel":"news","id":"n-1","data":{"a":1}})");

  r = accepted(R"({"user":"alice","data":"hi"})");
  EXPECT_EQ(r.publications.at(0).kind, target_kind::user);
  EXPECT_EQ(r.publications.at(0).payload->bytes(), R"({"type":"message","data":"hi"})");

  const std::string id(connection_id::generate().view());
  r = accepted(R"({"connection":")" + id + R"(","data":1,"exclude":")" + id + R"("})");
  EXPECT_EQ(r.publications.at(0).kind, target_kind::connection);
  EXPECT_EQ(r.publications.at(0).exclude, id);

  r = accepted(R"({"broadcast":true,"data":null})");
  EXPECT_EQ(r.publications.at(0).kind, target_kind::broadcast);
}

TEST(PublishRequest, StoredUserPublicationsGoToTheInbox) {
  auto r = accepted(R"({"user":"alice","data":1,"store":true})", "key-1");
  const publication& p = r.publications.at(0);
  EXPECT_EQ(p.kind, target_kind::channel);
  EXPECT_EQ(p.target, "$inbox:alice");
  EXPECT_EQ(p.idempotency_key, "key-1");  // the header applies to one publication
  EXPECT_EQ(refused(R"({"channel":"news","data":1,"store":true})").message,
            "\"store\" applies to user publications (the inbox)");
}

TEST(PublishRequest, IdempotencyKeysOnlyWhereHistoryIsKept) {
  EXPECT_EQ(accepted(R"({"channel":"orders.1","data":1})", "k").publications.at(0).idempotency_key,
            "k");
  EXPECT_EQ(accepted(R"({"channel":"orders.1","data":1,"idempotency_key":"b"})", "k")
                .publications.at(0)
                .idempotency_key,
            "b");
  EXPECT_EQ(refused(R"({"channel":"news","data":1})", "k").message,
            "idempotency keys apply to channels with history and to the inbox");
  EXPECT_EQ(refused(R"({"channel":"orders.1","data":1})", std::string(129, 'k')).message,
            "an idempotency key is at most 128 characters");
  // In a batch the header is ignored: each item names its own key.
  auto r = accepted(R"([{"channel":"news","data":1}])", "k");
  EXPECT_TRUE(r.publications.at(0).idempotency_key.empty());
}

TEST(PublishRequest, BatchesAreAllOrNothing) {
  auto r = accepted(R"([{"channel":"a","data":1},{"user":"u","data":2}])");
  EXPECT_TRUE(r.batch);
  EXPECT_EQ(r.publications.size(), 2u);
  const auto no = refused(R"([{"channel":"a","data":1},{"channel":"b"}])");
  EXPECT_EQ(no.status, 400);
  EXPECT_EQ(no.message, "item 1: \"data\" is required");
  EXPECT_EQ(refused("[]").message, "a batch holds 1 to 3 publications");
  EXPECT_EQ(refused(R"([{"broadcast":true,"data":1},{"broadcast":true,"data":1},
                        {"broadcast":true,"data":1},{"broadcast":true,"data":1}])")
                .message,
            "a batch holds 1 to 3 publications");
}

TEST(PublishRequest, RefusalsNameTheProblem) {
  const auto message = [](std::string_view body) { return refused(body).message; };
  EXPECT_EQ(message("{"), "the body is not valid JSON");
  EXPECT_EQ(message(std::string(100, '[') + std::string(100, ']')),
            "the body is JSON nested deeper than 64 levels (limits.json_max_depth)");
  EXPECT_EQ(message("7"), "a publication is a JSON object");
  EXPECT_EQ(message(R"({"channel":"a","data":1,"extra":2})"), "unknown field \"extra\"");
  EXPECT_EQ(message(R"({"data":1})"), "name exactly one of channel, user, connection, broadcast");
  EXPECT_EQ(message(R"({"channel":"a","user":"u","data":1})"),
            "name exactly one of channel, user, connection, broadcast");
  EXPECT_EQ(message(R"({"channel":7,"data":1})"), "\"channel\" must be a string");
  EXPECT_EQ(message(R"({"user":"","data":1})"), "\"user\" must be a string of 1 to 256 characters");
  EXPECT_EQ(message(R"({"connection":"nope","data":1})"), "\"connection\" must be a connection id");
  EXPECT_EQ(message(R"({"broadcast":false,"data":1})"), "\"broadcast\" must be true");
  EXPECT_EQ(message(R"({"channel":"a","data":1,"id":""})"),
            "\"id\" must be a string of 1 to 128 characters");
  EXPECT_EQ(message(R"({"channel":"a","data":1,"exclude":"x"})"),
            "\"exclude\" must be a connection id");
  EXPECT_EQ(message(R"({"channel":"a","data":1,"store":"yes"})"),
            "\"store\" must be true or false");

  const auto bad_name = refused(R"({"channel":"a b","data":1})");
  EXPECT_EQ(bad_name.code, "invalid_channel");
  EXPECT_EQ(bad_name.message, "channel names may contain only A-Z a-z 0-9 and . _ - : @ / = +");

  const auto big = refused(R"({"channel":"a","data":")" + std::string(200, 'x') + R"("})");
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(big.code, "payload_too_large");
  EXPECT_EQ(big.message, "the message is 242 bytes; the limit is 200");
}

}  // namespace
}  // namespace herald
