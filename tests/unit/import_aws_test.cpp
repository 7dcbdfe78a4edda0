#include "herald/tools/import_aws.hpp"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "herald/config/config.hpp"
#include "herald/server/startup.hpp"

namespace herald::aws_import {
namespace {

using nlohmann::json;

// A template under tests/fixtures/aws-templates/, or (with a '/') from the source tree.
std::string fixture(const std::string& name) {
  const std::string dir =
      name.find('/') == std::string::npos ? "/tests/fixtures/aws-templates/" : "/";
  std::ifstream in(std::string(HERALD_SOURCE_DIR) + dir + name);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The generated text as JSON (it carries // comments, as Herald's config files may).
json parsed(const result& r) {
  return json::parse(r.config_text, nullptr, true, true);
}

// What `herald --check-config` says about it.
config checked(const result& r) {
  config cfg = load_config({"", r.config_text, {}, {}});
  check_components(cfg);
  return cfg;
}

bool lists(const result& r, const std::string& words) {
  for (const auto& u : r.unmapped) {
    if (u.find(words) != std::string::npos) return true;
  }
  return false;
}

TEST(ImportAws, TheChatSampleBecomesAWorkingConfiguration) {
  const result r = import_template(fixture("examples/aws-chat/template.yaml"), {});
  EXPECT_EQ(r.api, "ChatSocket");
  EXPECT_TRUE(r.unmapped.empty()) << r.unmapped.front();
  const json c = parsed(r);
  EXPECT_EQ(c["routing"], (json{{"selection_expression", "$request.body.action"},
                                {"stage", "Prod"},
                                {"api_id", "chatsocket"}}));
  EXPECT_EQ(c["routes"], (json{{"$connect", {{"integration", "OnConnectFunction"}}},
                               {"$disconnect", {{"integration", "OnDisconnectFunction"}}},
                               {"sendmessage", {{"integration", "SendMessageFunction"}}}}));
  EXPECT_EQ(c["integrations"]["SendMessageFunction"],
            (json{{"type", "http"},
                  {"url", "http://127.0.0.1:3000/SendMessageFunction"},
                  {"mode", "lambda-proxy"}}));
  // A comment names each function, its code and handler (Globals give the runtime).
  EXPECT_NE(r.config_text.find("// OnConnectFunction: AWS::Serverless::Function, code onconnect/, "
                               "handler app.handler (nodejs20.x)"),
            std::string::npos);
  const config cfg = checked(r);
  EXPECT_EQ(cfg.routing.stage, "Prod");
  EXPECT_EQ(cfg.routes.size(), 3u);
}

TEST(ImportAws, AuthorizerSharedFunctionsAndWhatCannotBeMapped) {
  options o;
  o.placeholder_base = "http://backend:9000";
  const result r = import_template(fixture("authorizer.yaml"), o);
  EXPECT_EQ(r.api, "OrdersApi");  // the HTTP API beside it is not a candidate
  const json c = parsed(r);
  EXPECT_EQ(c["routing"]["selection_expression"], "${request.body.service}/${request.body.action}");
  EXPECT_EQ(c["routing"]["stage"], "live");
  // One integration per function: $connect and $disconnect share LifecycleFunction (reached
  // through !Sub with a variable map once, directly once).
  EXPECT_EQ(c["routes"]["$connect"], (json{{"integration", "LifecycleFunction"}}));
  EXPECT_EQ(c["routes"]["$disconnect"], (json{{"integration", "LifecycleFunction"}}));
  EXPECT_EQ(c["integrations"]["LifecycleFunction"]["url"], "http://backend:9000/LifecycleFunction");
  // A RouteResponse makes a route two-way; a literal function ARN names the function.
  EXPECT_EQ(c["routes"]["orders/track"],
            (json{{"integration", "track-order"}, {"response", true}}));
  EXPECT_EQ(c["routes"]["$default"], (json{{"integration", "EchoMock"}, {"response", true}}));
  EXPECT_EQ(c["integrations"]["EchoMock"], (json{{"type", "mock"}, {"status", 200}}));
  EXPECT_EQ(
      c["integrations"]["LegacyIntegration"],
      (json{{"type", "http"}, {"url", "https://legacy.example.com/orders"}, {"mode", "http"}}));
  // The REQUEST authorizer on $connect, with the identity sources Herald reads.
  EXPECT_EQ(c["auth"]["authorizer"],
            (json{{"integration", "AuthFunction"},
                  {"identity_sources",
                   {"route.request.header.Authorization", "route.request.querystring.tenant"}}}));
  // Listed, never dropped silently.
  EXPECT_TRUE(lists(r, "identity source stageVariables.secret of authorizer Auth"));
  EXPECT_TRUE(lists(r, "stage variables of live"));
  EXPECT_TRUE(lists(r, "DefaultRouteSettings of stage live"));
  EXPECT_TRUE(lists(r, "VTL templates of MOCK integration EchoMock"));
  EXPECT_TRUE(lists(r, "LegacyIntegration (HTTP_PROXY, route orders/legacy)"));
  EXPECT_EQ(r.unmapped.size(), 5u);
  for (const auto& u : r.unmapped)
    EXPECT_NE(r.config_text.find("//   - " + u), std::string::npos) << u;
  const config cfg = checked(r);
  EXPECT_EQ(cfg.auth.authorizer.integration, "AuthFunction");
}

TEST(ImportAws, JsonTemplatesIamAndStages) {
  const result r = import_template(fixture("iam.json"), {});
  const json c = parsed(r);
  // The stage the custom domain maps to, and the domain handlers call back.
  EXPECT_EQ(c["routing"]["stage"], "prod");
  EXPECT_EQ(c["routing"]["domain_name"], "feed.example.com");
  EXPECT_EQ(c["routes"]["$connect"], (json{{"integration", "FeedFunction"}}));
  EXPECT_TRUE(lists(r, "route $connect is authorized with AWS_IAM"));
  EXPECT_TRUE(lists(r, "stage dev (Dev)"));
  EXPECT_NE(r.config_text.find("// AWS_IAM on AWS: NOT checked here"), std::string::npos);
  checked(r);
}

// The message of the import_error, or "" if none.
std::string error_of(const std::string& text, const options& o = {}) {
  try {
    import_template(text, o);
  } catch (const import_error& e) {
    return e.what();
  }
  return "";
}

TEST(ImportAws, ClearErrors) {
  EXPECT_EQ(error_of("openapi: 3.0.1\npaths: {}\n").find("this is an OpenAPI document"), 0u);
  EXPECT_EQ(error_of("just: a map\n"), "not a CloudFormation or SAM template (no \"Resources\")");
  EXPECT_EQ(error_of("Resources:\n  H:\n    Type: AWS::ApiGatewayV2::Api\n    Properties:\n"
                     "      ProtocolType: HTTP\n"),
            "no WebSocket API in the template (an AWS::ApiGatewayV2::Api with ProtocolType "
            "WEBSOCKET); it has HTTP APIs: H");
  const std::string two =
      "Resources:\n"
      "  A: {Type: AWS::ApiGatewayV2::Api, Properties: {ProtocolType: WEBSOCKET}}\n"
      "  B: {Type: AWS::ApiGatewayV2::Api, Properties: {ProtocolType: WEBSOCKET}}\n";
  EXPECT_EQ(error_of(two), "the template has several WebSocket APIs (A, B): name one with --api");
  options o;
  o.api = "B";
  EXPECT_EQ(error_of(two, o), "");
  o.api = "C";
  EXPECT_EQ(error_of(two, o), "no WebSocket API \"C\" in the template (WebSocket APIs: A, B)");
  EXPECT_EQ(error_of("Resources: [unclosed\n").find("not YAML or JSON: "), 0u);
  // Nesting deep enough to hurt a recursive reader is an error, not a crash.
  const std::string deep = "Resources: " + std::string(100000, '[') + std::string(100000, ']');
  EXPECT_FALSE(error_of(deep).empty());
  // A route without an integration is listed, not fatal.
  const result r = import_template(
      "Resources:\n"
      "  A: {Type: AWS::ApiGatewayV2::Api, Properties: {ProtocolType: WEBSOCKET}}\n"
      "  R: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: !Ref A, RouteKey: $default}}\n",
      {});
  EXPECT_TRUE(lists(r, "route $default has no integration in the template"));
  EXPECT_EQ(parsed(r)["routes"], json::object());
  EXPECT_EQ(parsed(r)["routing"]["selection_expression"], "$request.body.action");
}

}  // namespace
}  // namespace herald::aws_import
