#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "config/config_schema.hpp"
#include "herald/config/cli.hpp"
#include "herald/config/config.hpp"
#include "herald/server/startup.hpp"

namespace herald {
namespace {

using namespace std::chrono_literals;

// What `herald --check-config` does: load (shapes), then the checks against the components.
config load(const config_sources& sources) {
  config cfg = load_config(sources);
  check_components(cfg);
  return cfg;
}

config from_text(const std::string& json) {
  return load({"", json, {}, {}});
}

// The message of the config_error thrown by `fn`, or "" if none was thrown.
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

TEST(ConfigDefaults, AreValidAndDocumented) {
  const config cfg = load({});
  EXPECT_EQ(cfg.listen, (endpoint{"127.0.0.1", 8080}));
  EXPECT_EQ(cfg.admin.listen, (endpoint{"127.0.0.1", 8081}));
  EXPECT_EQ(cfg.websocket.max_message_bytes, 128u * 1024);
  EXPECT_EQ(cfg.websocket.idle_timeout, 10min);
  EXPECT_EQ(cfg.websocket.max_duration, 2h);
  EXPECT_EQ(cfg.websocket.binary, binary_policy::reject);
  EXPECT_EQ(cfg.tls.mode, tls_mode::off);
  EXPECT_EQ(cfg.log.format, log_format::text);
}

TEST(ConfigFile, ParsesEveryValueType) {
  const config cfg = from_text(R"({
    "node_id": "edge-1",
    "listen": "[::1]:9000",
    "threads": 3,
    "log": {"level": "debug", "format": "json"},
    "admin": {"enabled": false, "listen": "0.0.0.0:9001"},
    "http": {"max_header_bytes": "16KiB", "request_timeout": "1500ms"},
    "websocket": {
      "path": "/ws",
      "max_message_bytes": 65536,
      "max_frame_bytes": "32KiB",
      "binary": "base64",
      "idle_timeout": "0",
      "ping_interval": "15s",
      "subprotocols": ["json.v1", "graphql-ws"],
      "send_queue": {"max_messages": 10, "max_bytes": "1MiB", "policy": "drop", "write_timeout": "2m"}
    },
    "shutdown": {"drain_timeout": "1h"}
  })");
  EXPECT_EQ(cfg.node_id, "edge-1");
  EXPECT_EQ(cfg.listen, (endpoint{"::1", 9000}));
  EXPECT_EQ(cfg.threads, 3u);
  EXPECT_EQ(cfg.log.level, log_level::debug);
  EXPECT_EQ(cfg.log.format, log_format::json);
  EXPECT_FALSE(cfg.admin.enabled);
  EXPECT_EQ(cfg.admin.listen, (endpoint{"0.0.0.0", 9001}));
  EXPECT_EQ(cfg.http.max_header_bytes, 16u * 1024);
  EXPECT_EQ(cfg.http.request_timeout, 1500ms);
  EXPECT_EQ(cfg.websocket.path, "/ws");
  EXPECT_EQ(cfg.websocket.max_message_bytes, 65536u);
  EXPECT_EQ(cfg.websocket.max_frame_bytes, 32u * 1024);
  EXPECT_EQ(cfg.websocket.binary, binary_policy::base64);
  EXPECT_EQ(cfg.websocket.idle_timeout, 0ms);
  EXPECT_EQ(cfg.websocket.ping_interval, 15s);
  EXPECT_EQ(cfg.websocket.subprotocols, (std::vector<std::string>{"json.v1", "graphql-ws"}));
  EXPECT_EQ(cfg.websocket.send_queue.max_messages, 10u);
  EXPECT_EQ(cfg.websocket.send_queue.policy, overflow_policy::drop);
  EXPECT_EQ(cfg.websocket.send_queue.write_timeout, 2min);
  EXPECT_EQ(cfg.shutdown.drain_timeout, 1h);
}

TEST(ConfigFile, AcceptsComments) {
  const config cfg =
      from_text("{\n  // the client port\n  \"listen\": \"127.0.0.1:1234\" /* here */\n}");
  EXPECT_EQ(cfg.listen.port, 1234);
}

TEST(ConfigFile, UnknownKeyNamesItAndSuggests) {
  EXPECT_EQ(
      error_of([] { from_text(R"({"websocket": {"idle_timeot": "5s"}})"); }),
      "websocket.idle_timeot: unknown key (in config); did you mean 'websocket.idle_timeout'?");
  // Right name, wrong level.
  EXPECT_EQ(error_of([] { from_text(R"({"idle_timeout": "5s"})"); }),
            "idle_timeout: unknown key (in config); did you mean 'websocket.idle_timeout'?");
  // Nothing close: no suggestion.
  EXPECT_EQ(error_of([] { from_text(R"({"zzzzzzzzzzzz": 1})"); }),
            "zzzzzzzzzzzz: unknown key (in config)");
}

TEST(ConfigFile, WrongTypesNameKeyAndExpectation) {
  EXPECT_EQ(error_of([] { from_text(R"({"websocket": {"idle_timeout": 5}})"); }),
            "websocket.idle_timeout: expected a duration such as \"250ms\", \"30s\", \"10m\" or "
            "\"2h\", got 5 (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"websocket": {"idle_timeout": "5 parsecs"}})"); }),
            "websocket.idle_timeout: expected a duration such as \"250ms\", \"30s\", \"10m\" or "
            "\"2h\", got \"5 parsecs\" (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"websocket": {"max_message_bytes": "lots"}})"); }),
            "websocket.max_message_bytes: expected a size in bytes such as 65536, \"64KiB\" or "
            "\"1MiB\", got \"lots\" (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"log": {"format": "xml"}})"); }),
            "log.format: expected one of text | json, got \"xml\" (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"threads": -1})"); }),
            "threads: expected a non-negative integer, got -1 (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"threads": 1000})"); }),
            "threads: must be between 0 and 256, got 1000 (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"admin": {"enabled": "yes"}})"); }),
            "admin.enabled: expected true or false, got \"yes\" (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"listen": "localhost"})"); }),
            "listen: expected \"host:port\", got \"localhost\" (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"listen": "127.0.0.1:99999"})"); }),
            "listen: port must be a number from 0 to 65535, got \"127.0.0.1:99999\" (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"websocket": 5})"); }),
            "websocket: expected an object (a section of settings), got 5");
  EXPECT_EQ(error_of([] { from_text(R"({"websocket": {"subprotocols": "a"}})"); }),
            "websocket.subprotocols: expected an array of strings, got \"a\" (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"websocket": {"max_message_bytes": 10}})"); }),
            "websocket.max_message_bytes: must be between 125 and 64MiB, got 10 (in config)");
}

TEST(ConfigFile, SyntaxErrorsGiveLineAndColumn) {
  const std::string err = error_of([] { from_text("{\n  \"listen\": \"a:1\",\n}"); });
  EXPECT_NE(err.find("config: invalid JSON: parse error at line 3, column 1"), std::string::npos)
      << err;
  EXPECT_NE(error_of([] { from_text("[1, 2]"); }).find("the top level must be a JSON object"),
            std::string::npos);
}

TEST(ConfigFile, MissingFileIsAnError) {
  EXPECT_NE(error_of([] {
              load({"/nonexistent/herald.json", "", {}, {}});
            }).find("cannot read config file /nonexistent/herald.json"),
            std::string::npos);
}

TEST(ConfigOverrides, EnvironmentThenFlagsWinOverFile) {
  config_sources src;
  src.file_text = R"({"listen": "127.0.0.1:1000", "websocket": {"idle_timeout": "1m"}})";
  src.environment = {{"HERALD_LISTEN", "127.0.0.1:2000"},
                     {"HERALD_WEBSOCKET_IDLE_TIMEOUT", "2m"},
                     {"HERALD_WEBSOCKET_SUBPROTOCOLS", "a, b,c"},
                     {"HERALD_ADMIN_ENABLED", "false"},
                     {"HERALD_THREADS", "4"}};
  src.flags = {{"websocket.idle-timeout", "3m"}, {"log-format", "json"}};
  const config cfg = load(src);
  EXPECT_EQ(cfg.listen.port, 2000);
  EXPECT_EQ(cfg.websocket.idle_timeout, 3min);
  EXPECT_EQ(cfg.websocket.subprotocols, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(cfg.admin.enabled);
  EXPECT_EQ(cfg.threads, 4u);
  EXPECT_EQ(cfg.log.format, log_format::json);
}

TEST(ConfigOverrides, ListsAcceptJsonArraysFromText) {
  config_sources src;
  src.environment = {{"HERALD_WEBSOCKET_SUBPROTOCOLS", R"(["x.v1", "z"])"}};
  EXPECT_EQ(load(src).websocket.subprotocols, (std::vector<std::string>{"x.v1", "z"}));
}

TEST(ConfigOverrides, BadValuesNameTheVariableOrFlag) {
  config_sources env;
  env.environment = {{"HERALD_WEBSOCKET_IDLE_TIMEOUT", "soon"}};
  EXPECT_EQ(error_of([&] { load(env); }),
            "websocket.idle_timeout: expected a duration such as \"250ms\", \"30s\", \"10m\" or "
            "\"2h\", got \"soon\" (in HERALD_WEBSOCKET_IDLE_TIMEOUT)");
  config_sources flag;
  flag.flags = {{"threads", "many"}};
  EXPECT_EQ(error_of([&] { load(flag); }),
            "threads: expected a non-negative integer, got \"many\" (in --threads)");
  config_sources unknown_flag;
  unknown_flag.flags = {{"log-formt", "json"}};
  EXPECT_EQ(error_of([&] { load(unknown_flag); }),
            "log-formt: unknown key (in --log-formt); did you mean 'log.format'?");
}

TEST(ConfigOverrides, UnknownEnvironmentVariablesAreErrorsButKubernetesServiceLinksAreNot) {
  config_sources typo;
  typo.environment = {{"HERALD_LISTN", "127.0.0.1:1"}};
  EXPECT_EQ(error_of([&] { load(typo); }),
            "HERALD_LISTN: not a Herald setting (in the environment); unset it, or did you mean "
            "HERALD_LISTEN?");
  // Kubernetes injects these for a Service named "herald" (or "herald-admin", ...).
  config_sources k8s;
  k8s.environment = {{"HERALD_SERVICE_HOST", "10.0.0.1"},
                     {"HERALD_SERVICE_PORT", "8080"},
                     {"HERALD_SERVICE_PORT_WS", "8080"},
                     {"HERALD_PORT", "tcp://10.0.0.1:8080"},
                     {"HERALD_PORT_8080_TCP", "tcp://10.0.0.1:8080"},
                     {"HERALD_PORT_8080_TCP_PROTO", "tcp"},
                     {"HERALD_PORT_8080_TCP_PORT", "8080"},
                     {"HERALD_PORT_8080_TCP_ADDR", "10.0.0.1"},
                     {"HERALD_ADMIN_PORT", "tcp://10.0.0.2:8081"},
                     {"HERALD_ADMIN_SERVICE_HOST", "10.0.0.2"}};
  EXPECT_EQ(load(k8s).listen.port, 8080);
  // A *_PORT that is not a service link is still an error.
  config_sources port;
  port.environment = {{"HERALD_PORT", "9000"}};
  EXPECT_NE(error_of([&] { load(port); }), "");
}

TEST(ConfigOverrides, ErrorsFoundLaterSayWhereTheValueCameFrom) {
  config_sources env;
  env.environment = {{"HERALD_ADMIN_API_KEYS", "short"}};
  EXPECT_EQ(error_of([&] { load(env); }),
            "admin.api_keys: keys must be at least 16 characters long (in HERALD_ADMIN_API_KEYS)");
  config_sources file;
  file.file_text = R"({"routes": {"$default": {"integration": "nope"}}})";
  EXPECT_EQ(error_of([&] { load(file); }),
            "routes.$default.integration: unknown integration \"nope\" (define it under "
            "integrations) (in config)");
  config_sources flag;
  flag.flags = {{"listen", "300.1.1.1:8302"}};
  EXPECT_EQ(error_of([&] { load(flag); }),
            "listen: \"300.1.1.1\" is not an IP address (Herald listens on addresses, not names: "
            "0.0.0.0 or [::] for every interface, 127.0.0.1 for this machine only) (in --listen)");
}

TEST(ConfigOverrides, PrintedConfigurationRoundTrips) {
  config_sources src;
  src.file_text =
      R"({"admin": {"api_keys": ["a-key-of-at-least-16-chars"]}, "log": {"level": "warning"}})";
  const config cfg = load(src);
  EXPECT_EQ(cfg.log.level, log_level::warn);
  // Redacted secrets are refused with a hint, not as "too short".
  config_sources redacted;
  redacted.file_text = dump_config(cfg);
  EXPECT_NE(redacted.file_text.find("<redacted>"), std::string::npos);
  EXPECT_EQ(error_of([&] { load(redacted); }).find("admin.api_keys: holds the placeholder"), 0u);
  config_sources shown;
  shown.file_text = dump_config(cfg, true);
  EXPECT_EQ(load(shown).admin.api_keys, cfg.admin.api_keys);
  // JWT keys: the secret only.
  config_sources jwt;
  jwt.file_text = R"({"auth": {"jwt": {"keys": [{"kid": "k1", "alg": "HS256",
                     "secret": "0123456789abcdef0123456789abcdef"}]}}})";
  const config with_jwt = load(jwt);
  config_sources jwt_printed;
  jwt_printed.file_text = dump_config(with_jwt);
  EXPECT_NE(jwt_printed.file_text.find(R"("kid": "k1")"), std::string::npos);
  EXPECT_EQ(jwt_printed.file_text.find("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(error_of([&] { load(jwt_printed); }).find("auth.jwt.keys: holds the placeholder"), 0u);
  jwt_printed.file_text = dump_config(with_jwt, true);
  EXPECT_EQ(load(jwt_printed).auth.jwt.keys.at(0).secret, with_jwt.auth.jwt.keys.at(0).secret);
  // A Redis URL shows everything but its password.
  config_sources redis;
  redis.file_text =
      R"({"backplane": "redis", "redis": {"url": "redis://app:s3cret@cache:6380/2"}})";
  const std::string printed = dump_config(load(redis));
  EXPECT_NE(printed.find(R"("url": "redis://app:<redacted>@cache:6380/2")"), std::string::npos);
  EXPECT_EQ(printed.find("s3cret"), std::string::npos);
}

TEST(ConfigValidation, BackendUrls) {
  const auto url_error = [](const std::string& url) {
    return error_of([&] {
      from_text(R"({"integrations": {"b": {"type": "http", "url": ")" + url + R"("}}})");
    });
  };
  EXPECT_EQ(url_error("http://a/"), "");  // one-character host names are host names
  EXPECT_EQ(url_error("http://a"), "");
  EXPECT_EQ(url_error("https://[::1]:8443/x"), "");
  for (const char* bad : {"ftp://a/", "http://", "http://:80/", "http://u@h/", "http://h:99999/"})
    EXPECT_NE(url_error(bad), "") << bad;
}

TEST(ConfigValidation, CrossKeyRules) {
  EXPECT_EQ(error_of([] { from_text(R"({"tls": {"mode": "auto"}})"); }),
            "tls.cert_file: required when tls.mode is not off");
  EXPECT_EQ(
      error_of([] {
        from_text(
            R"({"tls": {"mode": "required", "cert_file": "/nonexistent.pem", "key_file": "/x"}})");
      }),
      "tls.cert_file: cannot read \"/nonexistent.pem\" (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"websocket": {"max_frame_bytes": "256KiB"}})"); }),
            "websocket.max_frame_bytes: must not exceed websocket.max_message_bytes (128KiB), got "
            "256KiB (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"admin": {"listen": "127.0.0.1:8080"}})"); }),
            "admin.listen: must differ from listen (127.0.0.1:8080) (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"websocket": {"path": "ws"}})"); }),
            "websocket.path: must start with '/', got \"ws\" (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"websocket": {"subprotocols": ["bad name"]}})"); }),
            "websocket.subprotocols: \"bad name\" is not a valid subprotocol token (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"node_id": "has space"})"); }),
            "node_id: must be 1-64 characters of A-Z a-z 0-9 . _ -, got \"has space\" (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"websocket": {"send_queue": {"max_bytes": "64KiB"}}})"); }),
            "websocket.send_queue.max_bytes: must be at least websocket.max_message_bytes (128KiB) "
            "so one message always fits (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"admin": {"client_listener_connections": true}})"); }),
            "admin.client_listener_connections: serves @connections on the client listener with "
            "SigV4 only: set admin.sigv4.access_key_id and admin.sigv4.secret_access_key (in "
            "config)");
  EXPECT_NO_THROW(from_text(R"({"admin": {"client_listener_connections": true,
      "sigv4": {"access_key_id": "AKID", "secret_access_key": "secret"}}})"));
  // Port 0 on both listeners is fine: each gets its own free port.
  EXPECT_NO_THROW(from_text(R"({"listen": "127.0.0.1:0", "admin": {"listen": "127.0.0.1:0"}})"));
}

TEST(ConfigRoutes, DefaultIsATwoWayEcho) {
  const config cfg = load({});
  ASSERT_EQ(cfg.routes.size(), 1u);
  EXPECT_EQ(cfg.routes[0].key, "$default");
  EXPECT_EQ(cfg.routes[0].integration, "echo");
  EXPECT_TRUE(cfg.routes[0].response);
  EXPECT_NE(find_integration(cfg, "echo"), nullptr);
}

TEST(ConfigRoutes, ParsesRoutesAndIntegrations) {
  const config cfg = from_text(R"({
    "routing": {"selection_expression": "${request.body.service}/${request.body.action}", "stage": "prod"},
    "integrations": {
      "backend": {"type": "http", "url": "https://api.example.com/ws", "mode": "http", "timeout": "5s",
                  "headers": {"Authorization": "Bearer secret"}, "max_concurrency": 10},
      "nope": {"type": "mock", "status": 403, "body": {"message": "go away"}}
    },
    "routes": {
      "$connect": {"integration": "nope"},
      "$default": {"integration": "backend", "response": true},
      "chat/join": {"integration": "echo"}
    }
  })");
  ASSERT_EQ(cfg.integrations.size(), 2u);
  const auto* backend = find_integration(cfg, "backend");
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->kind, integration_kind::http);
  EXPECT_EQ(backend->mode, response_mode::http);
  EXPECT_EQ(backend->timeout, 5s);
  EXPECT_EQ(backend->max_concurrency, 10u);
  EXPECT_EQ(backend->headers,
            (std::vector<std::pair<std::string, std::string>>{{"Authorization", "Bearer secret"}}));
  const auto* nope = find_integration(cfg, "nope");
  EXPECT_EQ(nope->status, 403);
  EXPECT_EQ(nope->body, R"({"message":"go away"})");
  ASSERT_EQ(cfg.routes.size(), 3u);
  EXPECT_EQ(cfg.routing.stage, "prod");
}

TEST(ConfigRoutes, MistakesNameTheKey) {
  EXPECT_EQ(
      error_of([] {
        from_text(R"({"routes": {"$default": {"integration": "backnd"}},
                                        "integrations": {"backend": {"type": "echo"}}})");
      }),
      "routes.$default.integration: unknown integration \"backnd\"; did you mean \"backend\"? "
      "(define it under integrations) (in config)");
  EXPECT_EQ(
      error_of([] { from_text(R"({"routes": {"$custom": {"integration": "echo"}}})"); }),
      "routes.$custom: custom route keys must not start with '$' (only $connect, $disconnect and "
      "$default are predefined) (in config)");
  EXPECT_EQ(
      error_of([] {
        from_text(R"({"routes": {"$disconnect": {"integration": "echo", "response": true}}})");
      }),
      "routes.$disconnect.response: $disconnect cannot respond: the socket is closed (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"routes": {"a": {"integraton": "echo"}}})"); }),
            "routes.a.integraton: unknown key; did you mean 'routes.a.integration'? (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"integrations": {"b": {"type": "http"}}})"); }),
            "integrations.b.url: required for an http integration (in config)");
  EXPECT_EQ(error_of([] {
              from_text(R"({"integrations": {"b": {"type": "http", "url": "ftp://x/y"}}})");
            }),
            "integrations.b.url: expected an http:// or https:// URL such as "
            "\"http://backend:9000/events\", got \"ftp://x/y\" (in config)");
  EXPECT_EQ(
      error_of([] {
        from_text(
            R"({"integrations": {"b": {"type": "http", "url": "http://x:1/", "mode": "lambda"}}})");
      }),
      "integrations.b.mode: expected one of http | lambda-proxy, got \"lambda\" (in config)");
  EXPECT_EQ(
      error_of([] {
        from_text(
            R"({"integrations": {"b": {"type": "http", "url": "http://x:1/", "timout": "1s"}}})");
      }),
      "integrations.b.timout: unknown key; did you mean 'integrations.b.timeout'? (in config)");
  EXPECT_EQ(error_of([] { from_text(R"({"integrations": {"b": {"type": "lambda"}}})"); }),
            "integrations.b.type: expected one of http | echo | mock | redis_stream, got "
            "\"lambda\" (in config)");
  EXPECT_EQ(
      error_of([] { from_text(R"({"routing": {"selection_expression": "$default"}})"); }),
      "routing.selection_expression: a '$' must start ${request.body.<path>} (or be the whole "
      "$request.body.<path>); write \\$ for a literal dollar sign (in config)");
  EXPECT_EQ(
      error_of([] { from_text(R"({"http": {"trusted_proxies": ["10.0.0.0/40"]}})"); }),
      "http.trusted_proxies: \"10.0.0.0/40\" is not an address or CIDR range such as 10.0.0.0/8 "
      "(in config)");
}

TEST(ConfigRedis, ClusterSettingsThatContradictAreNamed) {
  const config cfg = from_text(
      R"({"backplane": "redis", "redis": {"url": "rediss://:pw@ignored", "cluster":
          {"addresses": ["10.0.0.1:7000", "10.0.0.2:7000"]}}})");
  EXPECT_EQ(cfg.redis.cluster.addresses.size(), 2u);
  EXPECT_EQ(error_of([] {
              from_text(R"({"backplane": "redis", "redis": {
                "cluster": {"addresses": ["10.0.0.1:7000"]},
                "sentinel": {"addresses": ["10.0.0.1:26379"], "master_name": "m"}}})");
            }),
            "redis.cluster.addresses: redis.cluster.addresses and redis.sentinel.addresses "
            "contradict each other: a Redis Cluster fails over by itself, without Sentinel; set "
            "one (in config)");
  EXPECT_EQ(error_of([] {
              from_text(R"({"backplane": "redis", "redis": {"url": "redis://h:1/3",
                "cluster": {"addresses": ["10.0.0.1:7000"]}}})");
            }),
            "redis.url: a Redis Cluster has only database 0, and redis.url names 3 (with "
            "redis.cluster.addresses) (in config)");
  EXPECT_EQ(error_of([] {
              from_text(R"({"backplane": "redis", "redis": {"url": "unix:///tmp/r.sock",
                "cluster": {"addresses": ["10.0.0.1:7000"]}}})");
            }),
            "redis.url: with redis.cluster the URL must be redis:// or rediss:// (its password and "
            "scheme apply to every node of the cluster) (in config)");
  EXPECT_EQ(error_of([] {
              from_text(R"({"backplane": "redis", "redis": {"cluster": {"addresses": ["x"]}}})");
            }).substr(0, 30),
            "redis.cluster.addresses: \"x\": ");
}

TEST(ConfigRoutes, FromTheEnvironmentAsJson) {
  config_sources src;
  src.environment = {
      {"HERALD_ROUTES",
       R"({"$default": {"integration": "echo"}, "ping": {"integration": "echo", "response": true}})"}};
  const config cfg = load(src);
  EXPECT_EQ(cfg.routes.size(), 2u);
  src.environment = {{"HERALD_ROUTES", "not json"}};
  EXPECT_EQ(error_of([&] { load(src); }),
            "routes: expected a JSON object, got \"not json\" (in HERALD_ROUTES)");
}

TEST(ConfigText, Durations) {
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("30s"), 30s);
  EXPECT_EQ(parse_duration("10m"), 10min);
  EXPECT_EQ(parse_duration("10min"), 10min);
  EXPECT_EQ(parse_duration("2h"), 2h);
  EXPECT_EQ(parse_duration("0"), 0ms);
  EXPECT_EQ(parse_duration(" 5s "), 5s);
  for (const char* bad : {"", "5", "s", "5 s", "-5s", "5d", "1.5s", "99999999999999h"}) {
    EXPECT_THROW(parse_duration(bad), std::invalid_argument) << bad;
  }
  EXPECT_EQ(format_duration(90s), "90s");
  EXPECT_EQ(format_duration(120s), "2m");
  EXPECT_EQ(format_duration(1500ms), "1500ms");
  EXPECT_EQ(format_duration(0ms), "0s");
}

TEST(ConfigText, Sizes) {
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("4096B"), 4096u);
  EXPECT_EQ(parse_size("64KiB"), 65536u);
  EXPECT_EQ(parse_size("1 MiB"), 1048576u);
  EXPECT_EQ(parse_size("2GiB"), 2147483648u);
  for (const char* bad : {"", "KiB", "1KB", "1k", "-1", "1.5MiB"}) {
    EXPECT_THROW(parse_size(bad), std::invalid_argument) << bad;
  }
  EXPECT_EQ(format_size(131072), "128KiB");
  EXPECT_EQ(format_size(1000), "1000");
}

TEST(ConfigText, Endpoints) {
  EXPECT_EQ(parse_endpoint("127.0.0.1:8080"), (endpoint{"127.0.0.1", 8080}));
  EXPECT_EQ(parse_endpoint("[::1]:0"), (endpoint{"::1", 0}));
  EXPECT_EQ(parse_endpoint(":8080"), (endpoint{"0.0.0.0", 8080}));
  EXPECT_EQ(parse_endpoint("example.internal:1"), (endpoint{"example.internal", 1}));
  for (const char* bad : {"", "8080", "::1:80", "[::1]", "[::1]80", "h:", "h:x", "h:70000"}) {
    EXPECT_THROW(parse_endpoint(bad), std::invalid_argument) << bad;
  }
  EXPECT_EQ((endpoint{"::1", 9}).to_string(), "[::1]:9");
}

TEST(ConfigSchema, NamesAreUniqueAfterNormalisation) {
  std::set<std::string> env, norm;
  for (const auto& o : describe_options()) {
    EXPECT_TRUE(env.insert(o.env).second) << o.env;
    EXPECT_TRUE(norm.insert(detail::normalize_key(o.key)).second) << o.key;
  }
}

TEST(ConfigSchema, DumpRoundTrips) {
  const config original =
      from_text(R"({"listen": "127.0.0.1:1", "websocket": {"idle_timeout": "90s",
    "subprotocols": ["a"], "send_queue": {"policy": "drop"}}, "tls": {"min_version": "1.3"}})");
  const std::string dumped = dump_config(original);
  const config again = from_text(dumped);
  EXPECT_EQ(dump_config(again), dumped);
  EXPECT_EQ(again.websocket.idle_timeout, 90s);
  EXPECT_EQ(again.tls.min_version, tls_version::v1_3);
}

std::string read_source_file(const std::string& relative) {
  std::ifstream in(std::string(HERALD_SOURCE_DIR) + "/" + relative);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ConfigSchema, ReferenceInDocsIsCurrent) {
  const std::string doc = read_source_file("docs/configuration.md");
  ASSERT_FALSE(doc.empty()) << "docs/configuration.md is missing";
  const std::string begin = "<!-- BEGIN GENERATED KEYS -->\n", end = "<!-- END GENERATED KEYS -->";
  const auto b = doc.find(begin), e = doc.find(end);
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(e, std::string::npos);
  EXPECT_EQ(doc.substr(b + begin.size(), e - b - begin.size()), config_reference_markdown())
      << "docs/configuration.md is out of date: run scripts/update-config-docs";
  for (const auto& o : describe_options()) {
    EXPECT_NE(doc.find("`" + o.key + "`"), std::string::npos)
        << o.key << " is not in docs/configuration.md";
  }
}

TEST(ConfigSchema, ShippedConfigFileIsValid) {
  const std::string text = read_source_file("config/herald.json");
  ASSERT_FALSE(text.empty());
  EXPECT_NO_THROW(load({"", text, {}, {}}));
}

TEST(Cli, ParsesActionsFlagsAndConfigPath) {
  const char* argv[] = {"herald",       "--config", "/etc/h.json", "--listen=127.0.0.1:1",
                        "--log-format", "json"};
  const auto opts = parse_cli(6, argv, nullptr);
  EXPECT_EQ(opts.what, cli_options::action::run);
  EXPECT_EQ(opts.config_path, "/etc/h.json");
  EXPECT_TRUE(opts.config_path_given);
  ASSERT_EQ(opts.overrides.size(), 2u);
  EXPECT_EQ(opts.overrides[0], (std::pair<std::string, std::string>{"listen", "127.0.0.1:1"}));
  EXPECT_EQ(opts.overrides[1], (std::pair<std::string, std::string>{"log-format", "json"}));

  const char* check[] = {"herald", "--check-config"};
  EXPECT_EQ(parse_cli(2, check, "/from/env.json").what, cli_options::action::check_config);
  EXPECT_EQ(parse_cli(2, check, "/from/env.json").config_path, "/from/env.json");

  const char* none[] = {"herald"};
  EXPECT_EQ(parse_cli(1, none, nullptr, "/nonexistent/default.json").config_path, "");

  const char* positional[] = {"herald", "serve"};
  EXPECT_THROW(parse_cli(2, positional, nullptr), config_error);
  const char* dangling[] = {"herald", "--listen"};
  EXPECT_THROW(parse_cli(2, dangling, nullptr), config_error);
}

TEST(Cli, UsageListsEveryKey) {
  const std::string usage = usage_text();
  for (const auto& o : describe_options())
    EXPECT_NE(usage.find(o.env), std::string::npos) << o.key;
}

}  // namespace
}  // namespace herald
