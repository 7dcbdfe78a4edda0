// The Redis connection (our Asio socket, hiredis as RESP reader and formatter) against a real
// redis-server, plain and over TLS, and against listeners that never answer (connect and command
// timeouts).
#include <hiredis/hiredis.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>

#include "redis/redis_connection.hpp"
#include "support/redis_server.hpp"

namespace herald::redis {
namespace {

using namespace std::chrono_literals;

struct events {
  int ready = 0;
  std::vector<std::string> lost;
  std::vector<std::vector<std::string>> pushes;
};

std::vector<std::string> strings_of(reply_view r) {
  std::vector<std::string> out;
  if (!r) return out;
  if (r->type == REDIS_REPLY_ARRAY) {
    for (std::size_t i = 0; i < r->elements; ++i) {
      const redisReply* e = r->element[i];
      out.push_back(e->type == REDIS_REPLY_INTEGER ? std::to_string(e->integer)
                                                   : std::string(e->str, e->len));
    }
  } else if (r->type == REDIS_REPLY_INTEGER) {
    out.push_back(std::to_string(r->integer));
  } else if (r->str) {
    out.emplace_back(r->str, r->len);
  }
  return out;
}

class RedisConnectionTest : public ::testing::Test {
 protected:
  std::shared_ptr<redis_connection> make(const std::string& url, events& ev,
                                         duration connect_timeout = 2000ms,
                                         duration command_timeout = 2000ms) {
    redis_connection::options o;
    o.endpoint = *endpoint::parse(url);
    o.connect_timeout = connect_timeout;
    o.command_timeout = command_timeout;
    redis_connection::callbacks cb;
    cb.on_ready = [&ev] { ++ev.ready; };
    cb.on_lost = [&ev](const std::string& why) { ev.lost.push_back(why); };
    cb.on_push = [&ev](reply_view r) { ev.pushes.push_back(strings_of(r)); };
    return std::make_shared<redis_connection>(ioc_, o, cb);
  }

  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 3000ms) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline)
      ioc_.run_for(5ms);
    return done();
  }

  asio::io_context ioc_;
  // Keeps run_for() running (an io_context out of work stops until restarted).
  asio::executor_work_guard<asio::io_context::executor_type> guard_{ioc_.get_executor()};
};

// Our RESP formatting is byte for byte what hiredis's redisFormatCommandArgv makes (which
// it replaced on the hot path), for empty, binary and large arguments.
TEST(RedisCommand, FormatsAsHiredisDoes) {
  const std::vector<std::vector<std::string>> commands = {
      {"PING"},
      {"HSET", "herald:conn:abc", "user", "", "sourceIp", "203.0.113.7"},
      {"PUBLISH", "chan", std::string("a\0b\r\n\xff", 6)},
      {"SET", "k", std::string(100000, 'x')},
  };
  std::string ours;
  std::string theirs;
  for (const auto& args : commands) {
    append_command(ours, args);
    std::vector<const char*> argv;
    std::vector<std::size_t> argvlen;
    for (const auto& a : args) {
      argv.push_back(a.data());
      argvlen.push_back(a.size());
    }
    char* formatted = nullptr;
    const int len = redisFormatCommandArgv(&formatted, static_cast<int>(argv.size()), argv.data(),
                                           argvlen.data());
    ASSERT_GT(len, 0);
    theirs.append(formatted, static_cast<std::size_t>(len));
    redisFreeCommand(formatted);
  }
  EXPECT_EQ(ours, theirs);
}

TEST(RedisEndpoint, ParsesUrls) {
  auto e = endpoint::parse("redis://127.0.0.1:6380/2");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, 6380);
  EXPECT_EQ(e->db, 2);
  e = endpoint::parse("redis://user:p%40ss@redis.internal");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->username, "user");
  EXPECT_EQ(e->password, "p@ss");
  EXPECT_EQ(e->port, 6379);
  EXPECT_EQ(e->describe(), "redis://redis.internal:6379");  // no password in logs
  e = endpoint::parse("redis://:secret@[::1]:7000");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host, "::1");
  EXPECT_EQ(e->password, "secret");
  e = endpoint::parse("unix:///var/run/redis.sock?db=3");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->unix_path, "/var/run/redis.sock");
  EXPECT_EQ(e->db, 3);
  std::string why;
  const auto tls = endpoint::parse("rediss://:pw@h:6380/2");
  ASSERT_TRUE(tls);
  EXPECT_TRUE(tls->tls);
  EXPECT_EQ(tls->port, 6380);
  EXPECT_EQ(tls->db, 2);
  EXPECT_EQ(tls->password, "pw");
  EXPECT_EQ(tls->describe(), "rediss://h:6380/2");
  EXPECT_FALSE(endpoint::parse("redis:/h:1", &why));
  EXPECT_NE(why.find("TLS"), std::string::npos);
  for (const char* bad :
       {"http://x", "redis://", "redis://h:0", "redis://h:x", "redis://h/x", "unix://relative"}) {
    EXPECT_FALSE(endpoint::parse(bad)) << bad;
  }
}

TEST_F(RedisConnectionTest, CommandsArePipelinedAndAnsweredInOrder) {
  test::redis_server server;
  events ev;
  auto c = make(server.unix_url(), ev);
  c->start();
  ASSERT_TRUE(run_until([&] { return ev.ready == 1; }));
  EXPECT_TRUE(c->ready());
  std::vector<long long> seen;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(c->command({"INCR", "counter"},
                           [&seen](reply_view r) { seen.push_back(r ? r->integer : -1); }));
  }
  EXPECT_EQ(c->pending(), 1000u);
  ASSERT_TRUE(run_until([&] { return seen.size() == 1000; }));
  for (int i = 0; i < 1000; ++i)
    ASSERT_EQ(seen[i], i + 1);
  EXPECT_EQ(c->pending(), 0u);
  // Binary-safe arguments.
  const std::string binary("a\0b\r\nc", 6);
  std::string got;
  c->command({"SET", "k", binary}, [](reply_view) {});
  c->command({"GET", "k"}, [&got](reply_view r) { got.assign(r->str, r->len); });
  ASSERT_TRUE(run_until([&] { return !got.empty(); }));
  EXPECT_EQ(got, binary);
  EXPECT_TRUE(ev.lost.empty());
}

TEST_F(RedisConnectionTest, PubSubDeliversConfirmationsAndMessages) {
  test::redis_server server(true);
  events sub_ev, pub_ev;
  auto sub = make("redis://127.0.0.1:" + std::to_string(server.port()), sub_ev);
  auto pub = make(server.unix_url(), pub_ev);
  sub->start();
  pub->start();
  ASSERT_TRUE(run_until([&] { return sub_ev.ready == 1 && pub_ev.ready == 1; }));
  ASSERT_TRUE(sub->subscribe({"a", "b"}));
  ASSERT_TRUE(run_until([&] { return sub_ev.pushes.size() == 2; }));
  EXPECT_EQ(sub_ev.pushes[0], (std::vector<std::string>{"subscribe", "a", "1"}));
  EXPECT_EQ(sub_ev.pushes[1], (std::vector<std::string>{"subscribe", "b", "2"}));
  long long receivers = -1;
  pub->command({"PUBLISH", "b", "hello"}, [&](reply_view r) { receivers = r->integer; });
  ASSERT_TRUE(run_until([&] { return sub_ev.pushes.size() == 3; }));
  EXPECT_EQ(receivers, 1);
  EXPECT_EQ(sub_ev.pushes[2], (std::vector<std::string>{"message", "b", "hello"}));
  ASSERT_TRUE(sub->unsubscribe({"a"}));
  ASSERT_TRUE(run_until([&] { return sub_ev.pushes.size() == 4; }));
  EXPECT_EQ(sub_ev.pushes[3], (std::vector<std::string>{"unsubscribe", "a", "1"}));
}

TEST_F(RedisConnectionTest, RefusedConnectIsReportedOnce) {
  events ev;
  auto c = make("redis://127.0.0.1:" + std::to_string(test::free_port()), ev);
  c->start();
  ASSERT_TRUE(run_until([&] { return !ev.lost.empty(); }));
  ioc_.run_for(50ms);
  ASSERT_EQ(ev.lost.size(), 1u);
  EXPECT_NE(ev.lost[0].find("connect"), std::string::npos) << ev.lost[0];
  EXPECT_FALSE(c->command({"PING"}, [](reply_view) {}));
  // A missing unix socket fails at once too.
  events ev2;
  auto u = make("unix:///nonexistent/redis.sock", ev2);
  u->start();
  ASSERT_TRUE(run_until([&] { return !ev2.lost.empty(); }));
}

TEST_F(RedisConnectionTest, ConnectTimesOutAgainstABlackHole) {
  test::black_hole hole(true);
  events ev;
  auto c = make("redis://127.0.0.1:" + std::to_string(hole.port()), ev, 200ms);
  const auto t0 = std::chrono::steady_clock::now();
  c->start();
  ASSERT_TRUE(run_until([&] { return !ev.lost.empty(); }));
  EXPECT_EQ(ev.lost[0], "connect timeout");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 180ms);
  EXPECT_EQ(ev.ready, 0);
}

// A listener that accepts and never answers (a frozen Redis: the kernel completes the TCP
// handshake for a stopped process) is never "ready": readiness takes Redis's own answer (PING).
TEST_F(RedisConnectionTest, AListenerThatNeverAnswersIsNeverReady) {
  test::black_hole hole(false);
  events ev;
  auto c = make("redis://127.0.0.1:" + std::to_string(hole.port()), ev, 200ms);
  c->start();
  ASSERT_TRUE(run_until([&] { return !ev.lost.empty(); }));
  EXPECT_EQ(ev.lost[0], "connect timeout");
  EXPECT_EQ(ev.ready, 0);
}

TEST_F(RedisConnectionTest, CommandTimesOutWhenNoReplyComes) {
  test::redis_server server;
  events ev;
  auto c = make(server.unix_url(), ev, 1000ms, 150ms);
  c->start();
  ASSERT_TRUE(run_until([&] { return ev.ready == 1; }));
  server.signal(SIGSTOP);  // frozen: the connection stays, nothing is answered
  bool failed = false;
  ASSERT_TRUE(c->command({"PING"}, [&failed](reply_view r) { failed = (r == nullptr); }));
  ASSERT_TRUE(run_until([&] { return !ev.lost.empty(); }));
  EXPECT_EQ(ev.lost[0], "command timeout");
  EXPECT_TRUE(failed) << "the pending command gets a null reply";
  server.signal(SIGCONT);
}

TEST_F(RedisConnectionTest, LosingTheServerFailsPendingCommandsAndRestartReconnects) {
  test::redis_server server;
  events ev;
  auto c = make(server.unix_url(), ev);
  c->start();
  ASSERT_TRUE(run_until([&] { return ev.ready == 1; }));
  // A command that blocks server-side, then the server dies.
  bool got_null = false;
  ASSERT_TRUE(c->command({"BLPOP", "nothing", "5"},
                         [&got_null](reply_view r) { got_null = (r == nullptr); }));
  ioc_.run_for(20ms);
  server.kill();
  ASSERT_TRUE(run_until([&] { return !ev.lost.empty(); }));
  EXPECT_TRUE(got_null);
  EXPECT_FALSE(c->ready());
  server.start();
  c->start();
  ASSERT_TRUE(run_until([&] { return ev.ready == 2; }));
  std::string pong;
  c->command({"PING"}, [&pong](reply_view r) { pong.assign(r->str, r->len); });
  ASSERT_TRUE(run_until([&] { return !pong.empty(); }));
  EXPECT_EQ(pong, "PONG");
  EXPECT_EQ(ev.lost.size(), 1u);
}

TEST_F(RedisConnectionTest, AuthenticatesAndReportsBadPasswords) {
  test::redis_server server(false, "s3cret-pass");
  events good, bad;
  redis_connection::options o;
  o.endpoint.unix_path = server.socket_path();
  o.endpoint.password = "s3cret-pass";
  o.endpoint.db = 3;
  redis_connection::callbacks cb;
  cb.on_ready = [&good] { ++good.ready; };
  cb.on_lost = [&good](const std::string& why) { good.lost.push_back(why); };
  auto authed = std::make_shared<redis_connection>(ioc_, o, cb);
  authed->start();
  ASSERT_TRUE(run_until([&] { return good.ready == 1; }));
  long long db = -1;
  authed->command({"CLIENT", "INFO"}, [&db](reply_view r) {
    const std::string info(r->str, r->len);
    const auto pos = info.find(" db=");
    db = pos == std::string::npos ? -1 : std::stoll(info.substr(pos + 4));
  });
  ASSERT_TRUE(run_until([&] { return db != -1; }));
  EXPECT_EQ(db, 3);

  o.endpoint.password = "wrong";
  cb.on_ready = [&bad] { ++bad.ready; };
  cb.on_lost = [&bad](const std::string& why) { bad.lost.push_back(why); };
  auto refused = std::make_shared<redis_connection>(ioc_, o, cb);
  refused->start();
  ASSERT_TRUE(run_until([&] { return !bad.lost.empty(); }));
  EXPECT_EQ(bad.ready, 0);
  EXPECT_EQ(bad.lost[0].rfind("AUTH: ", 0), 0u) << bad.lost[0];
}

TEST_F(RedisConnectionTest, StopIsQuietAndSafeWithCommandsInFlight) {
  test::redis_server server;
  events ev;
  auto c = make(server.unix_url(), ev);
  c->start();
  ASSERT_TRUE(run_until([&] { return ev.ready == 1; }));
  int nulls = 0;
  for (int i = 0; i < 10; ++i)
    c->command({"BLPOP", "x", "5"}, [&nulls](reply_view r) { nulls += r == nullptr; });
  c->stop();
  EXPECT_EQ(nulls, 10);
  ioc_.run_for(50ms);
  EXPECT_TRUE(ev.lost.empty()) << "stop() reports nothing";
  c.reset();  // destroying after stop is fine
  ioc_.run_for(20ms);
}

TEST_F(RedisConnectionTest, ThePipelineIsBounded) {
  test::redis_server server;
  events ev;
  redis_connection::options o;
  o.endpoint = *endpoint::parse(server.unix_url());
  o.max_pending = 16;
  redis_connection::callbacks cb;
  cb.on_ready = [&ev] { ++ev.ready; };
  auto c = std::make_shared<redis_connection>(ioc_, o, cb);
  c->start();
  ASSERT_TRUE(run_until([&] { return ev.ready == 1; }));
  int answered = 0, accepted = 0;
  for (int i = 0; i < 20; ++i)
    accepted += c->command({"PING"}, [&answered](reply_view r) { answered += r != nullptr; });
  EXPECT_EQ(accepted, 16);
  EXPECT_EQ(c->refused(), 4u);
  ASSERT_TRUE(run_until([&] { return answered == 16; }));
  // Room again once answered.
  EXPECT_TRUE(c->command({"PING"}, [&answered](reply_view) { ++answered; }));
  ASSERT_TRUE(run_until([&] { return answered == 17; }));
}

// TLS: a server certificate for localhost/127.0.0.1 (its own CA), another unrelated one (a
// wrong CA), and a client certificate for servers that require one.
class RedisTlsTest : public RedisConnectionTest {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/herald-tls-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    server_ = test::make_test_certificate(dir_, "server");
    other_ = test::make_test_certificate(dir_, "other");
    client_ = test::make_test_certificate(dir_, "client");
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  test::redis_tls server_tls(bool auth_clients = false) const {
    return {server_.cert, server_.key, client_.cert, auth_clients};
  }
  std::shared_ptr<redis_connection> tls_client(const test::redis_server& s, events& ev,
                                               redis_tls_config t, std::string host = "127.0.0.1") {
    redis_connection::options o;
    o.endpoint = *endpoint::parse("rediss://" + host + ":" + std::to_string(s.port()));
    o.tls = make_client_tls(t);
    o.tls_server_name = t.server_name;
    o.tls_verify = t.verify;
    redis_connection::callbacks cb;
    cb.on_ready = [&ev] { ++ev.ready; };
    cb.on_lost = [&ev](const std::string& why) { ev.lost.push_back(why); };
    cb.on_push = [&ev](reply_view r) { ev.pushes.push_back(strings_of(r)); };
    return std::make_shared<redis_connection>(ioc_, o, cb);
  }
  static redis_tls_config trusting(const test::test_certificate& ca) {
    redis_tls_config t;
    t.ca_file = ca.cert;
    return t;
  }

  static inline std::string dir_;
  static inline test::test_certificate server_, other_, client_;
};

TEST_F(RedisTlsTest, CommandsAndPubSubOverTls) {
  test::redis_server server(true, {}, server_tls());
  events ev;
  auto c = tls_client(server, ev, trusting(server_));
  c->start();
  ASSERT_TRUE(run_until([&] { return ev.ready == 1 || !ev.lost.empty(); }));
  ASSERT_EQ(ev.ready, 1) << (ev.lost.empty() ? "" : ev.lost[0]);
  std::vector<long long> seen;
  for (int i = 0; i < 500; ++i)
    c->command({"INCR", "n"}, [&seen](reply_view r) { seen.push_back(r ? r->integer : -1); });
  ASSERT_TRUE(run_until([&] { return seen.size() == 500; }));
  EXPECT_EQ(seen.back(), 500);

  events sub_ev;
  auto sub = tls_client(server, sub_ev, trusting(server_), "localhost");  // by name too
  sub->start();
  ASSERT_TRUE(run_until([&] { return sub_ev.ready == 1; }));
  ASSERT_TRUE(sub->subscribe({"news"}));
  ASSERT_TRUE(run_until([&] { return sub_ev.pushes.size() == 1; }));
  c->command({"PUBLISH", "news", "hello"}, [](reply_view) {});
  ASSERT_TRUE(run_until([&] { return sub_ev.pushes.size() == 2; }));
  EXPECT_EQ(sub_ev.pushes[1], (std::vector<std::string>{"message", "news", "hello"}));
  EXPECT_TRUE(ev.lost.empty());
}

TEST_F(RedisTlsTest, AWrongCaOrNameIsRefusedNeverPlainText) {
  test::redis_server server(true, {}, server_tls());
  events wrong_ca;
  auto a = tls_client(server, wrong_ca, trusting(other_));
  a->start();
  ASSERT_TRUE(run_until([&] { return !wrong_ca.lost.empty(); }));
  EXPECT_EQ(wrong_ca.ready, 0);
  EXPECT_NE(wrong_ca.lost[0].find("TLS handshake with 127.0.0.1: certificate verify failed"),
            std::string::npos)
      << wrong_ca.lost[0];

  events wrong_name;
  redis_tls_config t = trusting(server_);
  t.server_name = "redis.example.com";  // not in the certificate
  auto b = tls_client(server, wrong_name, t);
  b->start();
  ASSERT_TRUE(run_until([&] { return !wrong_name.lost.empty(); }));
  EXPECT_EQ(wrong_name.ready, 0);
  EXPECT_NE(wrong_name.lost[0].find("redis.example.com: certificate verify failed"),
            std::string::npos)
      << wrong_name.lost[0];

  // Verification off (for tests only) accepts the unknown CA.
  events unverified;
  redis_tls_config off = trusting(other_);
  off.verify = false;
  auto d = tls_client(server, unverified, off);
  d->start();
  ASSERT_TRUE(run_until([&] { return unverified.ready == 1; }));

  // A plain client on the TLS port never becomes ready.
  events plain;
  auto p = make("redis://127.0.0.1:" + std::to_string(server.port()), plain, 500ms, 500ms);
  p->start();
  ASSERT_TRUE(run_until([&] { return !plain.lost.empty(); }));
  EXPECT_EQ(plain.ready, 0);
}

TEST_F(RedisTlsTest, MutualTls) {
  test::redis_server server(true, {}, server_tls(/*auth_clients=*/true));
  events anonymous;
  auto a = tls_client(server, anonymous, trusting(server_));
  a->start();
  ASSERT_TRUE(run_until([&] { return !anonymous.lost.empty(); }));
  EXPECT_EQ(anonymous.ready, 0);

  events with_cert;
  redis_tls_config t = trusting(server_);
  t.cert_file = client_.cert;
  t.key_file = client_.key;
  auto b = tls_client(server, with_cert, t);
  b->start();
  ASSERT_TRUE(run_until([&] { return with_cert.ready == 1 || !with_cert.lost.empty(); }));
  EXPECT_EQ(with_cert.ready, 1) << (with_cert.lost.empty() ? "" : with_cert.lost[0]);
}

TEST(RedisTlsConfig, UnusableFilesNameTheKey) {
  redis_tls_config t;
  t.ca_file = "/nonexistent/ca.pem";
  try {
    make_client_tls(t);
    ADD_FAILURE() << "accepted a missing CA file";
  } catch (const config_error& e) {
    EXPECT_EQ(e.key(), "redis.tls.ca_file");
  }
}

}  // namespace
}  // namespace herald::redis
