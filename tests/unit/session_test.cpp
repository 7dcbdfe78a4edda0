// websocket_session driven in-process: one worker, a loopback socket pair, a recording handler
// and a hand-written client, so queue policies, read pausing and close paths are tested
// deterministically.
#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "herald/common/log.hpp"
#include "herald/delivery/connection_registry.hpp"
#include "herald/ws/frame.hpp"
#include "net/server_context.hpp"
#include "net/websocket_session.hpp"
#include "net/worker.hpp"

namespace herald::net {
namespace {

using namespace std::chrono_literals;

struct recording_handler : connection_handler {
  std::shared_ptr<connection> conn;
  std::vector<std::string> messages;
  std::vector<std::pair<std::uint16_t, std::string>> closes;
  std::function<void(connection&, std::string_view)> on_msg =
      [](connection& c, std::string_view p) { c.send(make_message(std::string(p))); };

  void on_open(const std::shared_ptr<connection>& c) override { conn = c; }
  void on_message(connection& c, std::string_view payload, bool) override {
    messages.emplace_back(payload);
    on_msg(c, payload);
  }
  void on_close(connection&, std::uint16_t code, std::string_view reason) override {
    closes.emplace_back(code, std::string(reason));
  }
};

struct frame_log : ws::frame_handler {
  std::vector<std::string> texts;
  std::vector<std::uint16_t> close_codes;
  std::vector<std::string> pongs;
  int pings = 0;
  bool on_message(ws::opcode, std::string_view p, bool) override {
    texts.emplace_back(p);
    return true;
  }
  bool on_ping(std::string_view) override {
    ++pings;
    return true;
  }
  bool on_pong(std::string_view p) override {
    pongs.emplace_back(p);
    return true;
  }
  bool on_close(std::uint16_t code, std::string_view) override {
    close_codes.push_back(code);
    return true;
  }
};

class SessionTest : public ::testing::Test {
 protected:
  void start(std::function<void(config&)> tweak = {}) {
    cfg_.websocket.ping_interval = 0ms;
    cfg_.websocket.rate_limit.messages_per_second = 0;
    if (tweak) tweak(cfg_);
    log_ = std::make_unique<logger>(log_config{log_level::off, log_format::text},
                                    std::make_shared<spdlog::sinks::null_sink_mt>());
    ctx_ = std::make_unique<server_context>(cfg_, *log_, registry_);
    ctx_->handler = &handler_;
    ctx_->workers.push_back(std::make_unique<worker>(0, *ctx_));
    auto& ioc = w().context();
    tcp::acceptor acceptor(ioc, {asio::ip::make_address("127.0.0.1"), 0});
    client_.emplace(ioc);
    client_->connect(acceptor.local_endpoint());
    tcp::socket server(ioc);
    acceptor.accept(server);
    connection_info info;
    info.id = connection_id::generate();
    info.set_source_ip("127.0.0.1");
    start_websocket_session(std::move(server), std::string(), info, admission(), 0, w(), *ctx_);
    ASSERT_TRUE(handler_.conn);
  }

  worker& w() { return *ctx_->workers.front(); }

  void send_frame(ws::opcode op, std::string_view payload) {
    std::uint8_t header[ws::max_header_bytes];
    const std::array<std::uint8_t, 4> key{1, 2, 3, 4};
    const std::size_t n = ws::encode_masked_header(header, op, payload.size(), key);
    std::string wire(reinterpret_cast<char*>(header), n);
    std::string body(payload);
    ws::apply_mask(body.data(), body.size(), key);
    wire += body;
    asio::write(*client_, asio::buffer(wire));
  }

  // Runs the worker until `done` holds or the time is up.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 2000ms) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      w().context().run_for(5ms);
      drain_client();
    }
    return done();
  }

  // Reads whatever the server sent so far into `frames_`.
  void drain_client() {
    if (!client_->is_open()) return;
    client_->non_blocking(true);
    std::array<char, 65536> buf;
    for (;;) {
      error_code ec;
      const std::size_t n = client_->read_some(asio::buffer(buf), ec);
      if (ec) break;
      client_decoder_.feed({buf.data(), n}, frames_);
    }
  }

  config cfg_;
  std::unique_ptr<logger> log_;
  connection_registry registry_;
  std::unique_ptr<server_context> ctx_;
  recording_handler handler_;
  std::optional<tcp::socket> client_;
  ws::decoder client_decoder_{{1 << 20, 1 << 20, false}};
  frame_log frames_;
};

TEST_F(SessionTest, EchoesAndRegisters) {
  start();
  EXPECT_EQ(registry_.size(), 1u);
  send_frame(ws::opcode::text, "hello");
  ASSERT_TRUE(run_until([&] { return frames_.texts.size() == 1; }));
  EXPECT_EQ(frames_.texts[0], "hello");
}

TEST_F(SessionTest, ByteByByteInputIsReassembled) {
  start();
  std::uint8_t header[ws::max_header_bytes];
  const std::array<std::uint8_t, 4> key{9, 8, 7, 6};
  std::string payload(300, 'z');
  const std::size_t n = ws::encode_masked_header(header, ws::opcode::text, payload.size(), key);
  std::string wire(reinterpret_cast<char*>(header), n);
  ws::apply_mask(payload.data(), payload.size(), key);
  wire += payload;
  for (char c : wire) {
    asio::write(*client_, asio::buffer(&c, 1));
    w().context().poll();
  }
  ASSERT_TRUE(run_until([&] { return frames_.texts.size() == 1; }));
  EXPECT_EQ(frames_.texts[0], std::string(300, 'z'));
}

TEST_F(SessionTest, DropPolicyDropsAndCountsButKeepsTheConnection) {
  start([](config& c) {
    c.websocket.send_queue.max_messages = 4;
    c.websocket.send_queue.policy = overflow_policy::drop;
  });
  std::vector<send_result> results;
  // Ten sends in one loop turn: nothing is flushed in between.
  asio::post(w().context(), [&] {
    for (int i = 0; i < 10; ++i) {
      results.push_back(handler_.conn->send(make_message("m" + std::to_string(i))));
    }
  });
  ASSERT_TRUE(run_until([&] { return frames_.texts.size() == 4; }));
  ASSERT_EQ(results.size(), 10u);
  EXPECT_EQ(std::count(results.begin(), results.end(), send_result::queued), 4);
  EXPECT_EQ(std::count(results.begin(), results.end(), send_result::dropped), 6);
  EXPECT_EQ(w().metrics().send_queue_dropped.value(), 6u);
  EXPECT_EQ(frames_.texts, (std::vector<std::string>{"m0", "m1", "m2", "m3"}));
  EXPECT_TRUE(handler_.closes.empty());
  // Still usable.
  send_frame(ws::opcode::text, "after");
  ASSERT_TRUE(run_until([&] { return frames_.texts.size() == 5; }));
}

TEST_F(SessionTest, ClosePolicyClosesWith1008AndDiscardsTheBacklog) {
  start([](config& c) {
    c.websocket.send_queue.max_messages = 4;
    c.websocket.send_queue.policy = overflow_policy::close;
  });
  std::vector<send_result> results;
  asio::post(w().context(), [&] {
    for (int i = 0; i < 6; ++i) {
      results.push_back(handler_.conn->send(make_message("m" + std::to_string(i))));
    }
  });
  ASSERT_TRUE(run_until([&] { return !handler_.closes.empty(); }));
  EXPECT_EQ(results[3], send_result::queued);
  EXPECT_EQ(results[4], send_result::closing);
  EXPECT_EQ(results[5], send_result::closing);
  EXPECT_EQ(handler_.closes[0],
            (std::pair<std::uint16_t, std::string>{1008, "send queue overflow"}));
  ASSERT_TRUE(run_until([&] { return !frames_.close_codes.empty(); }));
  EXPECT_EQ(frames_.close_codes[0], 1008);
  EXPECT_TRUE(frames_.texts.empty()) << "queued messages are discarded, not delivered late";
  EXPECT_EQ(registry_.size(), 0u);
  EXPECT_EQ(w().metrics().send_queue_overflow_closes.value(), 1u);
}

TEST_F(SessionTest, InflightLimitPausesReadingAndKeepsTheRest) {
  start([](config& c) { c.routing.max_inflight_per_connection = 2; });
  std::vector<connection*> held;
  handler_.on_msg = [&](connection& c, std::string_view) {
    c.begin_request();  // handled "asynchronously": not finished yet
    held.push_back(&c);
  };
  // Five messages in one write: only two may be handed over.
  for (int i = 0; i < 5; ++i)
    send_frame(ws::opcode::text, "q" + std::to_string(i));
  run_until([&] { return handler_.messages.size() >= 2; });
  w().context().run_for(50ms);
  ASSERT_EQ(handler_.messages.size(), 2u);
  held[0]->end_request();
  held[1]->end_request();
  ASSERT_TRUE(run_until([&] { return handler_.messages.size() == 4; }));
  w().context().run_for(50ms);
  EXPECT_EQ(handler_.messages.size(), 4u);
  held[2]->end_request();
  ASSERT_TRUE(run_until([&] { return handler_.messages.size() == 5; }));
  EXPECT_EQ(handler_.messages, (std::vector<std::string>{"q0", "q1", "q2", "q3", "q4"}));
}

TEST_F(SessionTest, OnCloseRunsOnceWhenTheClientCloses) {
  start();
  const std::string payload = ws::close_payload(4001, "bye");
  send_frame(ws::opcode::close, payload);
  ASSERT_TRUE(run_until([&] { return !handler_.closes.empty(); }));
  ASSERT_TRUE(run_until([&] { return !frames_.close_codes.empty(); }));
  EXPECT_EQ(frames_.close_codes[0], 4001);  // the code is echoed
  client_->close();
  w().context().run_for(50ms);
  ASSERT_EQ(handler_.closes.size(), 1u);
  EXPECT_EQ(handler_.closes[0], (std::pair<std::uint16_t, std::string>{4001, "bye"}));
}

TEST_F(SessionTest, OnCloseRunsOnceWhenTheServerClosesAndTheClientAnswers) {
  start();
  handler_.conn->close(1001, "going away");
  ASSERT_TRUE(run_until([&] { return !frames_.close_codes.empty(); }));
  EXPECT_TRUE(handler_.closes.empty()) << "waits for the client's close frame";
  send_frame(ws::opcode::close, ws::close_payload(1001, ""));
  ASSERT_TRUE(run_until([&] { return !handler_.closes.empty(); }));
  w().context().run_for(50ms);
  ASSERT_EQ(handler_.closes.size(), 1u);
  EXPECT_EQ(handler_.closes[0].first, 1001);
}

TEST_F(SessionTest, DroppedTcpIs1006) {
  start();
  client_->close();
  ASSERT_TRUE(run_until([&] { return !handler_.closes.empty(); }));
  EXPECT_EQ(handler_.closes[0], (std::pair<std::uint16_t, std::string>{1006, "connection lost"}));
  EXPECT_EQ(registry_.size(), 0u);
}

TEST_F(SessionTest, SilentPeerIsDroppedAfterThePongTimeout) {
  start([](config& c) {
    c.websocket.ping_interval = 40ms;
    c.websocket.pong_timeout = 40ms;
  });
  ASSERT_TRUE(run_until([&] { return !handler_.closes.empty(); }));
  EXPECT_GE(frames_.pings, 1);
  EXPECT_EQ(handler_.closes[0], (std::pair<std::uint16_t, std::string>{1006, "pong timeout"}));
  EXPECT_EQ(w().metrics().pong_timeouts.value(), 1u);
}

TEST_F(SessionTest, AnswersPingsWithTheirPayload) {
  start();
  send_frame(ws::opcode::ping, "are you there");
  ASSERT_TRUE(run_until([&] { return !frames_.pongs.empty(); }));
  EXPECT_EQ(frames_.pongs, (std::vector<std::string>{"are you there"}));
  EXPECT_TRUE(frames_.texts.empty());
}

TEST_F(SessionTest, WorkPostedFromOtherThreadsRunsInOrderAsOneBatch) {
  start();
  std::vector<int> ran;
  std::thread other([&] {
    for (int i = 0; i < 3; ++i)
      w().post([&ran, i] { ran.push_back(i); });
  });
  other.join();
  // One loop handler for the whole mailbox: the deliveries of a burst end in one flush.
  EXPECT_EQ(w().context().run_one(), 1u);
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2}));
  // A task that throws is logged; the ones after it still run.
  w().post([] { throw std::runtime_error("bug"); });
  w().post([&ran] { ran.push_back(3); });
  EXPECT_EQ(w().context().run_one(), 1u);
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2, 3}));
}

TEST_F(SessionTest, LargeAndPipelinedFramesInOneWriteAreAllDecoded) {
  start([](config& c) { c.websocket.max_message_bytes = c.websocket.max_frame_bytes = 1 << 20; });
  // Three frames in one TCP write: shorter than, far longer than, and just over the first
  // read of a session.
  std::string wire;
  const std::vector<std::string> payloads = {"short", std::string(300'000, 'L'),
                                             std::string(129, 'm')};
  for (const auto& p : payloads) {
    std::uint8_t header[ws::max_header_bytes];
    const std::array<std::uint8_t, 4> key{5, 6, 7, 8};
    const std::size_t n = ws::encode_masked_header(header, ws::opcode::text, p.size(), key);
    wire.append(reinterpret_cast<char*>(header), n);
    std::string body = p;
    ws::apply_mask(body.data(), body.size(), key);
    wire += body;
  }
  std::thread writer([&] { asio::write(*client_, asio::buffer(wire)); });
  ASSERT_TRUE(run_until([&] { return frames_.texts.size() == 3; }, 5000ms));
  writer.join();
  EXPECT_EQ(frames_.texts, payloads);
}

TEST_F(SessionTest, SendsFromOtherThreadsKeepTheirOrderAndLeaveInOneWrite) {
  start();
  // The worker is busy while another thread sends 500 messages: they wait in the worker's
  // mailbox, run as one batch and leave in one write.
  std::atomic<bool> sent{false};
  asio::post(w().context(), [&] {
    while (!sent.load())
      std::this_thread::yield();
  });
  std::thread other([&] {
    for (int i = 0; i < 500; ++i)
      handler_.conn->send(make_message("m" + std::to_string(i)));
    sent = true;
  });
  const auto writes_before = w().metrics().socket_writes.value();
  ASSERT_TRUE(run_until([&] { return frames_.texts.size() == 500; }));
  other.join();
  for (int i = 0; i < 500; ++i)
    ASSERT_EQ(frames_.texts[static_cast<std::size_t>(i)], "m" + std::to_string(i));
  EXPECT_EQ(w().metrics().socket_writes.value() - writes_before, 1u);
  EXPECT_EQ(w().metrics().messages_out.value(), 500u);
}

TEST_F(SessionTest, ABacklogLargerThanTheSocketBuffersArrivesWhole) {
  start([](config& c) {
    c.websocket.send_queue.max_messages = 1000;
    c.websocket.send_queue.max_bytes = 64 << 20;
  });
  // 400 x 64 KiB while the client reads nothing: writes stop at a full socket and resume
  // where they stopped, in the middle of a frame.
  std::vector<std::string> sent;
  asio::post(w().context(), [&] {
    for (int i = 0; i < 400; ++i) {
      sent.push_back(std::string(64 * 1024, static_cast<char>('a' + i % 26)));
      sent.back()[0] = static_cast<char>('0' + i % 10);
      handler_.conn->send(make_message(sent.back()));
    }
  });
  for (int i = 0; i < 20; ++i)
    w().context().run_for(5ms);  // write until the socket is full; nothing read yet
  EXPECT_EQ(w().metrics().messages_out.value(), 0u);  // the batch is not out yet
  ASSERT_TRUE(run_until([&] { return frames_.texts.size() == 400; }, 10000ms));
  EXPECT_EQ(frames_.texts, sent);
  EXPECT_TRUE(handler_.closes.empty());
}

}  // namespace
}  // namespace herald::net
