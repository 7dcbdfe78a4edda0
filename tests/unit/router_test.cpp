// The router without sockets: which route a message takes, what the integration is given,
// what goes back to the client (two-way replies, API Gateway's error frames, Herald's own
// protocol replies), $connect decisions, and the per-connection request bracket.
#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <nlohmann/json.hpp>

#include "herald/delivery/backplane.hpp"
#include "herald/delivery/connection_registry.hpp"
#include "herald/protocol/client_frames.hpp"
#include "herald/routing/router.hpp"
#include "support/fake_connection.hpp"

namespace herald {
namespace {

using json = nlohmann::json;
using testing::manual_workers;
using testing::recording_connection;

// An integration that records its calls and answers as told, at once or when released.
class scripted_integration final : public integration {
 public:
  struct call {
    event_type type;
    std::string route_key, body, event;
  };
  void invoke(const invocation& inv, integration_callback done) override {
    calls.push_back(
        {inv.type, std::string(inv.route_key), std::string(inv.body), std::string(inv.event)});
    if (hold)
      held.push_back(std::move(done));
    else
      done(answer);
  }
  std::vector<call> calls;
  integration_result answer;
  bool hold = false;
  std::vector<integration_callback> held;
};

struct gateway {
  explicit gateway(config c) : cfg(std::move(c)) {
    backplane = make_local_backplane(
        cfg, [this](publication p) { dispatcher->deliver_from_cluster(std::move(p)); },
        workers.poster());
    dispatcher =
        std::make_unique<herald::dispatcher>(cfg, registry, *backplane, 1, workers.poster());
    auto b = std::make_unique<scripted_integration>();
    auto j = std::make_unique<scripted_integration>();
    backend = b.get();
    joiner = j.get();
    router::integration_map m;
    m["backend"] = std::move(b);
    m["joiner"] = std::move(j);
    router = std::make_unique<herald::router>(cfg, log, std::move(m), *dispatcher, *backplane, 1);
    conn = std::make_shared<recording_connection>(0, "alice");
    registry.add(conn);
    router->on_open(conn);
  }
  ~gateway() { router->on_close(*conn, 1000, ""); }

  // Sends a text message and runs the workers; returns the frames it caused.
  std::vector<std::string> send(const std::string& text) {
    const std::size_t before = conn->frames.size();
    router->on_message(*conn, text, false);
    workers.run();
    return {conn->frames.begin() + static_cast<std::ptrdiff_t>(before), conn->frames.end()};
  }

  config cfg;
  logger log = logger(cfg.log, std::make_shared<spdlog::sinks::null_sink_mt>(), "test");
  manual_workers workers;
  connection_registry registry;
  std::unique_ptr<herald::backplane> backplane;
  std::unique_ptr<herald::dispatcher> dispatcher;
  std::unique_ptr<herald::router> router;
  scripted_integration* backend = nullptr;
  scripted_integration* joiner = nullptr;
  std::shared_ptr<recording_connection> conn;
};

config routes(std::vector<route_config> r) {
  config cfg;
  cfg.routes = std::move(r);
  return cfg;
}

integration_result answer(std::string body, int status = 200) {
  integration_result r;
  r.status = status;
  r.body = std::move(body);
  r.has_body = true;
  return r;
}

TEST(Router, PicksTheRouteByTheSelectionExpression) {
  gateway g(routes({{"$default", "backend", true}, {"join", "joiner", false}}));
  g.joiner->answer = answer("ignored: one-way route");
  g.backend->answer = answer(R"({"echo":1})");

  EXPECT_TRUE(g.send(R"({"action":"join","room":1})").empty());
  ASSERT_EQ(g.joiner->calls.size(), 1u);
  EXPECT_EQ(g.joiner->calls[0].route_key, "join");
  EXPECT_EQ(g.joiner->calls[0].type, event_type::message);
  EXPECT_EQ(g.joiner->calls[0].body, R"({"action":"join","room":1})");

  // No match, not JSON, a predefined key: all go to $default, whose answer comes back.
  for (const char* text : {R"({"action":"leave"})", "plain text", R"({"action":"$connect"})"}) {
    EXPECT_EQ(g.send(text), std::vector<std::string>{R"({"echo":1})"}) << text;
  }
  EXPECT_EQ(g.backend->calls.size(), 3u);
  EXPECT_EQ(g.backend->calls[0].route_key, "$default");
  EXPECT_EQ(g.joiner->calls.size(), 1u);
}

TEST(Router, GivesTheIntegrationAnApiGatewayEvent) {
  gateway g(routes({{"join", "joiner", false}}));
  g.send(R"({"action":"join"})");
  ASSERT_EQ(g.joiner->calls.size(), 1u);
  const json event = json::parse(g.joiner->calls[0].event);
  EXPECT_EQ(event["body"], R"({"action":"join"})");
  EXPECT_EQ(event["isBase64Encoded"], false);
  const json& rc = event["requestContext"];
  EXPECT_EQ(rc["routeKey"], "join");
  EXPECT_EQ(rc["eventType"], "MESSAGE");
  EXPECT_EQ(rc["connectionId"], std::string(g.conn->id().view()));
  EXPECT_EQ(rc["identity"]["sourceIp"], "127.0.0.1");
}

TEST(Router, AnswersLikeApiGatewayWhenNoRouteOrTheIntegrationFails) {
  gateway g(routes({{"join", "joiner", true}}));
  auto frames = g.send(R"({"action":"nothing"})");
  ASSERT_EQ(frames.size(), 1u);
  json f = json::parse(frames[0]);
  EXPECT_EQ(f["message"], "Forbidden");
  EXPECT_EQ(f["connectionId"], std::string(g.conn->id().view()));
  EXPECT_FALSE(f["requestId"].get<std::string>().empty());
  EXPECT_EQ(g.router->metrics(0).forbidden.value(), 1u);

  g.joiner->answer = integration_result::failure("backend unreachable");
  frames = g.send(R"({"action":"join"})");
  ASSERT_EQ(frames.size(), 1u);
  f = json::parse(frames[0]);
  EXPECT_EQ(f["message"], "Internal server error");
  EXPECT_EQ(g.router->metrics(0).failures.value(), 1u);
}

TEST(Router, HoldsTheConnectionWhileAMessageIsHandled) {
  gateway g(routes({{"$default", "backend", true}}));
  g.backend->hold = true;
  g.send("one");
  EXPECT_EQ(g.conn->inflight, 1);
  EXPECT_EQ(g.router->inflight(), 1);
  g.backend->held.at(0)(answer("done"));
  EXPECT_EQ(g.conn->inflight, 0);
  EXPECT_EQ(g.router->inflight(), 0);
  EXPECT_EQ(g.conn->frames, std::vector<std::string>{"done"});
}

TEST(Router, AnswersHeraldsOwnActions) {
  gateway g(routes({{"$default", "backend", true}}));
  EXPECT_EQ(g.send(R"({"action":"$heartbeat","id":7})"),
            std::vector<std::string>{R"({"type":"heartbeat","id":7})"});
  EXPECT_EQ(g.send(R"({"action":"subscribe","channel":"news","id":1})"),
            std::vector<std::string>{R"({"type":"subscribed","channel":"news","id":1})"});
  EXPECT_EQ(g.send(R"({"action":"subscribe","channel":"a b","id":2})"),
            std::vector<std::string>{protocol::error(
                "invalid_channel", "channel names may contain only A-Z a-z 0-9 and . _ - : @ / = +",
                "", "2")});
  EXPECT_EQ(
      g.send(R"({"action":"subscribe","channel":7})"),
      std::vector<std::string>{protocol::error("bad_request", "\"channel\" must be a string")});
  EXPECT_EQ(g.send(R"({"action":"subscribe","channel":"news","since":"x"})"),
            std::vector<std::string>{protocol::error(
                "bad_request", "\"since\" must be an offset (a non-negative integer)", "news")});
  EXPECT_EQ(g.send(R"({"action":"subscribe","channel":"$inbox"})"),
            std::vector<std::string>{
                protocol::error("invalid_channel", "the inbox is not enabled", "$inbox")});
  EXPECT_EQ(g.send(R"({"action":"unsubscribe","channel":"news","id":"u"})"),
            std::vector<std::string>{R"({"type":"unsubscribed","channel":"news","id":"u"})"});
  const std::string deep = R"({"action":)" + std::string(70, '[') + std::string(70, ']') + "}";
  EXPECT_EQ(g.send(deep), std::vector<std::string>{protocol::error(
                              "bad_request", "message nested deeper than 64 levels")});
  EXPECT_TRUE(g.backend->calls.empty());  // none of them reached the integration
}

TEST(Router, ClientPublishingFollowsTheChannelRules) {
  config cfg = routes({{"$default", "backend", true}});
  cfg.channels.publish_action = "publish";
  cfg.channels.rules.push_back({});
  cfg.channels.rules.back().pattern = "chat.*";
  cfg.channels.rules.back().publish = true;
  gateway g(cfg);
  g.send(R"({"action":"subscribe","channel":"chat.1"})");
  const auto frames = g.send(R"({"action":"publish","channel":"chat.1","data":{"t":"hi"},"id":3})");
  // The sender is subscribed: it hears its publication, and the reply.
  EXPECT_EQ(frames,
            (std::vector<std::string>{protocol::message("chat.1", R"({"t":"hi"})"),
                                      R"({"type":"published","channel":"chat.1","id":3})"}));
  EXPECT_EQ(g.send(R"({"action":"publish","channel":"news","data":1})"),
            std::vector<std::string>{
                protocol::error("forbidden", "not allowed to publish to this channel", "news")});
  EXPECT_EQ(
      g.send(R"({"action":"publish","channel":"chat.1"})"),
      std::vector<std::string>{protocol::error("bad_request", "\"data\" is required", "chat.1")});
}

TEST(Router, ConnectRouteDecidesTheHandshake) {
  gateway g(routes({{"$connect", "backend", false}, {"$default", "joiner", false}}));
  ASSERT_TRUE(g.router->has_connect_route());
  connect_request request{"/?token=x", {{"Host", "example.com"}}};
  const auto decide = [&](integration_result r) {
    g.backend->answer = std::move(r);
    connect_decision out;
    g.router->on_connect(g.conn->info(), request, {"chat.v1"},
                         [&](connect_decision d) { out = d; });
    g.workers.run();
    return out;
  };
  auto d = decide(answer("", 403));
  EXPECT_FALSE(d.accept);
  EXPECT_EQ(d.status, 403);
  EXPECT_EQ(d.body, R"({"message":"Forbidden"})");
  EXPECT_EQ(g.backend->calls.back().type, event_type::connect);

  integration_result ok = answer("");
  ok.headers = {{"Sec-WebSocket-Protocol", "chat.v1"}, {"X-Herald-User-Id", "bob"}};
  d = decide(ok);
  EXPECT_TRUE(d.accept);
  EXPECT_EQ(d.subprotocol, "chat.v1");
  EXPECT_EQ(d.user_id, "bob");

  d = decide(integration_result::failure("down"));
  EXPECT_FALSE(d.accept);
  EXPECT_EQ(d.status, 500);
}

}  // namespace
}  // namespace herald
