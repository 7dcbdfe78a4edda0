#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "herald/ws/frame.hpp"

namespace herald::ws {
namespace {

constexpr std::array<std::uint8_t, 4> kKey{0x37, 0xfa, 0x21, 0x3d};

// A frame as a client sends it (masked unless told otherwise).
std::string client_frame(opcode op, std::string_view payload, bool fin = true, bool masked = true,
                         std::uint8_t extra_bits = 0) {
  std::uint8_t header[max_header_bytes];
  std::size_t n = masked ? encode_masked_header(header, op, payload.size(), kKey, fin)
                         : encode_header(header, op, payload.size(), fin);
  header[0] |= extra_bits;
  std::string out(reinterpret_cast<char*>(header), n);
  std::string body(payload);
  if (masked) apply_mask(body.data(), body.size(), kKey);
  return out + body;
}

// Records what the decoder reports.
struct recorder : frame_handler {
  std::vector<std::string> events;
  int stop_after = -1;  // return false after this many events

  bool record(std::string e) {
    events.push_back(std::move(e));
    return stop_after < 0 || static_cast<int>(events.size()) < stop_after;
  }
  bool on_message(opcode op, std::string_view p, bool compressed) override {
    return record(std::string(compressed ? "deflated-" : "") +
                  (op == opcode::text ? "text:" : "binary:") + std::string(p));
  }
  bool on_ping(std::string_view p) override { return record("ping:" + std::string(p)); }
  bool on_pong(std::string_view p) override { return record("pong:" + std::string(p)); }
  bool on_close(std::uint16_t code, std::string_view reason) override {
    return record("close:" + std::to_string(code) + ":" + std::string(reason));
  }
};

struct result {
  decode_status status;
  decode_error error;
  std::vector<std::string> events;
};

result decode(std::string wire, decoder_limits limits = {}, std::size_t chunk = 0) {
  decoder d(limits);
  recorder r;
  decode_status st = decode_status::ok;
  if (chunk == 0) chunk = wire.size() == 0 ? 1 : wire.size();
  for (std::size_t i = 0; i < wire.size() && st == decode_status::ok; i += chunk) {
    st = d.feed({wire.data() + i, std::min(chunk, wire.size() - i)}, r);
  }
  return {st, d.error(), r.events};
}

TEST(FrameEncode, HeaderLengthsFollowPayloadSize) {
  std::uint8_t h[max_header_bytes];
  EXPECT_EQ(encode_header(h, opcode::text, 0), 2u);
  EXPECT_EQ(h[0], 0x81);
  EXPECT_EQ(h[1], 0x00);
  EXPECT_EQ(encode_header(h, opcode::binary, 125), 2u);
  EXPECT_EQ(h[1], 125);
  EXPECT_EQ(encode_header(h, opcode::text, 126), 4u);
  EXPECT_EQ(h[1], 126);
  EXPECT_EQ((h[2] << 8) | h[3], 126);
  EXPECT_EQ(encode_header(h, opcode::text, 65535), 4u);
  EXPECT_EQ(encode_header(h, opcode::text, 65536), 10u);
  EXPECT_EQ(h[1], 127);
  EXPECT_EQ(h[7], 0x01);  // 65536 = 0x0000000000010000
  EXPECT_EQ(encode_header(h, opcode::continuation, 3, false), 2u);
  EXPECT_EQ(h[0], 0x00);
  EXPECT_EQ(encode_masked_header(h, opcode::text, 5, kKey), 6u);
  EXPECT_EQ(h[1], 0x85);
}

TEST(FrameEncode, ClosePayloadKeepsUtf8Intact) {
  EXPECT_EQ(close_payload(1000, ""), std::string("\x03\xe8", 2));
  EXPECT_EQ(close_payload(1001, "bye"), std::string("\x03\xe9"
                                                    "bye",
                                                    5));
  // 62 two-byte characters = 124 bytes: cut to 122 bytes (61 characters), not 123.
  std::string reason;
  for (int i = 0; i < 62; ++i)
    reason += "\xc3\xa9";
  const std::string p = close_payload(1000, reason);
  EXPECT_EQ(p.size(), 2u + 122u);
  EXPECT_TRUE(is_valid_utf8(p.substr(2)));
}

TEST(FrameMask, RoundTripsAtAnyOffset) {
  const std::string original = "The quick brown fox jumps over the lazy dog, twice over.";
  for (std::size_t split = 0; split <= original.size(); ++split) {
    std::string s = original;
    apply_mask(s.data(), split, kKey, 0);
    apply_mask(s.data() + split, s.size() - split, kKey, split);
    std::string whole = original;
    apply_mask(whole.data(), whole.size(), kKey, 0);
    EXPECT_EQ(s, whole) << split;
    apply_mask(whole.data(), whole.size(), kKey, 0);
    EXPECT_EQ(whole, original);
  }
}

TEST(FrameDecode, SingleTextFrame) {
  const auto r = decode(client_frame(opcode::text, "hello"));
  EXPECT_EQ(r.status, decode_status::ok);
  EXPECT_EQ(r.events, (std::vector<std::string>{"text:hello"}));
}

TEST(FrameDecode, LengthEncodingsAndEmptyMessages) {
  const std::string medium(300, 'm');
  const std::string large(70000, 'L');
  const auto r = decode(client_frame(opcode::text, "") + client_frame(opcode::binary, medium) +
                            client_frame(opcode::text, large),
                        {100000, 100000, true});
  ASSERT_EQ(r.status, decode_status::ok);
  ASSERT_EQ(r.events.size(), 3u);
  EXPECT_EQ(r.events[0], "text:");
  EXPECT_EQ(r.events[1], "binary:" + medium);
  EXPECT_EQ(r.events[2], "text:" + large);
}

TEST(FrameDecode, FragmentedMessageWithInterleavedControlFrames) {
  const std::string wire =
      client_frame(opcode::text, "Hel", false) + client_frame(opcode::ping, "p1") +
      client_frame(opcode::continuation, "lo, ", false) + client_frame(opcode::pong, "") +
      client_frame(opcode::continuation, "", false) + client_frame(opcode::continuation, "world") +
      client_frame(opcode::close, std::string("\x03\xe8"
                                              "done",
                                              6));
  const std::vector<std::string> expected{"ping:p1", "pong:", "text:Hello, world",
                                          "close:1000:done"};
  // Same result whatever the read sizes: whole, and split at every possible size.
  for (std::size_t chunk = 0; chunk <= wire.size(); ++chunk) {
    const auto r = decode(wire, {}, chunk);
    EXPECT_EQ(r.status, decode_status::ok) << "chunk " << chunk;
    EXPECT_EQ(r.events, expected) << "chunk " << chunk;
  }
}

TEST(FrameDecode, CloseWithoutPayloadReportsNoStatus) {
  const auto r = decode(client_frame(opcode::close, ""));
  EXPECT_EQ(r.events, (std::vector<std::string>{"close:1005:"}));
}

TEST(FrameDecode, HandlerCanStopDecoding) {
  decoder d({});
  recorder r;
  r.stop_after = 1;
  std::string wire = client_frame(opcode::text, "a") + client_frame(opcode::text, "b");
  EXPECT_EQ(d.feed({wire.data(), wire.size()}, r), decode_status::stopped);
  EXPECT_EQ(r.events, (std::vector<std::string>{"text:a"}));
  // It stopped right after the first frame; the rest can be fed again later.
  const std::size_t first = client_frame(opcode::text, "a").size();
  EXPECT_EQ(d.consumed(), first);
  r.stop_after = -1;
  EXPECT_EQ(d.feed({wire.data() + first, wire.size() - first}, r), decode_status::ok);
  EXPECT_EQ(d.consumed(), wire.size() - first);
  EXPECT_EQ(r.events, (std::vector<std::string>{"text:a", "text:b"}));
}

struct protocol_error_case {
  const char* name;
  std::string wire;
  std::uint16_t code;
};

TEST(FrameDecode, ProtocolErrorsCloseWithTheRightCode) {
  std::string huge_length(
      "\x81\xff\x80\x00\x00\x00\x00\x00\x00\x01"
      "\x37\xfa\x21\x3d",
      14);
  const std::vector<protocol_error_case> cases{
      {"unmasked", client_frame(opcode::text, "x", true, false), close_code::protocol_error},
      {"rsv1", client_frame(opcode::text, "x", true, true, 0x40), close_code::protocol_error},
      {"rsv3", client_frame(opcode::text, "x", true, true, 0x10), close_code::protocol_error},
      {"opcode 3", client_frame(static_cast<opcode>(3), "x"), close_code::protocol_error},
      {"opcode 0xB", client_frame(static_cast<opcode>(0xB), ""), close_code::protocol_error},
      {"fragmented ping", client_frame(opcode::ping, "x", false), close_code::protocol_error},
      {"long ping", client_frame(opcode::ping, std::string(126, 'x')), close_code::protocol_error},
      {"orphan continuation", client_frame(opcode::continuation, "x"), close_code::protocol_error},
      {"text inside fragmented",
       client_frame(opcode::text, "a", false) + client_frame(opcode::text, "b"),
       close_code::protocol_error},
      {"one-byte close", client_frame(opcode::close, "\x03"), close_code::protocol_error},
      {"close code 999", client_frame(opcode::close, std::string("\x03\xe7", 2)),
       close_code::protocol_error},
      {"close code 1005", client_frame(opcode::close, std::string("\x03\xed", 2)),
       close_code::protocol_error},
      {"close code 1006", client_frame(opcode::close, std::string("\x03\xee", 2)),
       close_code::protocol_error},
      {"close code 5000", client_frame(opcode::close, std::string("\x13\x88", 2)),
       close_code::protocol_error},
      {"close reason not utf8", client_frame(opcode::close, std::string("\x03\xe8\xff", 3)),
       close_code::invalid_payload},
      {"text not utf8", client_frame(opcode::text, "\xc0\xaf"), close_code::invalid_payload},
      {"text truncated utf8", client_frame(opcode::text, "\xe2\x82"), close_code::invalid_payload},
      {"64-bit length with top bit", huge_length, close_code::protocol_error},
  };
  for (const auto& c : cases) {
    for (std::size_t chunk : {std::size_t{0}, std::size_t{1}}) {
      const auto r = decode(c.wire, {}, chunk);
      EXPECT_EQ(r.status, decode_status::error) << c.name << " chunk " << chunk;
      EXPECT_EQ(r.error.code, c.code) << c.name << ": " << r.error.reason;
      EXPECT_FALSE(r.error.reason.empty()) << c.name;
    }
  }
}

TEST(FrameDecode, ValidCloseCodesPass) {
  for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999}) {
    std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
    const auto r = decode(client_frame(opcode::close, payload));
    EXPECT_EQ(r.events, (std::vector<std::string>{"close:" + std::to_string(code) + ":"})) << code;
  }
}

TEST(FrameDecode, InvalidUtf8FailsFastMidMessage) {
  // The first fragment already holds an invalid byte: fail before the message ends.
  decoder d({});
  recorder r;
  std::string first = client_frame(opcode::text, "ok\xff", false);
  EXPECT_EQ(d.feed({first.data(), first.size()}, r), decode_status::error);
  EXPECT_EQ(d.error().code, close_code::invalid_payload);
  // A sequence split across fragments is fine.
  const auto split = decode(client_frame(opcode::text, "\xe2\x82", false) +
                            client_frame(opcode::continuation, "\xac"));
  EXPECT_EQ(split.events, (std::vector<std::string>{"text:\xe2\x82\xac"}));
}

TEST(FrameDecode, BinaryIsNotUtf8Checked) {
  const auto r = decode(client_frame(opcode::binary, std::string("\xff\x00\xc0", 3)));
  EXPECT_EQ(r.status, decode_status::ok);
  EXPECT_EQ(r.events, (std::vector<std::string>{std::string("binary:\xff\x00\xc0", 10)}));
}

TEST(FrameDecode, Rsv1MarksACompressedMessageOnlyWhenAgreed) {
  decoder_limits agreed;
  agreed.allow_compressed = true;
  // Whole, and in fragments (RSV1 on the first frame only); not UTF-8 checked, since only the
  // inflated text can be.
  const auto whole = decode(client_frame(opcode::text, "\xff\x01", true, true, 0x40), agreed);
  EXPECT_EQ(whole.status, decode_status::ok);
  EXPECT_EQ(whole.events, (std::vector<std::string>{"deflated-text:\xff\x01"}));
  const auto parts =
      decode(client_frame(opcode::binary, "ab", false, true, 0x40) +
                 client_frame(opcode::continuation, "\xc0") + client_frame(opcode::text, "plain"),
             agreed, 3);
  EXPECT_EQ(parts.events, (std::vector<std::string>{"deflated-binary:ab\xc0", "text:plain"}));
  // Not agreed; on a continuation; on a control frame; RSV2 and RSV3 in any case.
  EXPECT_EQ(decode(client_frame(opcode::text, "x", true, true, 0x40)).error.code,
            close_code::protocol_error);
  EXPECT_EQ(decode(client_frame(opcode::text, "a", false, true, 0x40) +
                       client_frame(opcode::continuation, "b", true, true, 0x40),
                   agreed)
                .error.code,
            close_code::protocol_error);
  EXPECT_EQ(decode(client_frame(opcode::ping, "p", true, true, 0x40), agreed).error.code,
            close_code::protocol_error);
  EXPECT_EQ(decode(client_frame(opcode::text, "x", true, true, 0x20), agreed).error.code,
            close_code::protocol_error);
}

TEST(FrameEncode, CompressedSetsRsv1) {
  std::uint8_t h[max_header_bytes];
  encode_header(h, opcode::text, 5, true, true);
  EXPECT_EQ(h[0], 0xC1);
  encode_header(h, opcode::binary, 5, true, false);
  EXPECT_EQ(h[0], 0x82);
}

TEST(FrameDecode, LimitsOnFrameAndMessageSize) {
  const decoder_limits limits{10, 20, true};
  auto r = decode(client_frame(opcode::text, std::string(11, 'x')), limits);
  EXPECT_EQ(r.status, decode_status::error);
  EXPECT_EQ(r.error.code, close_code::message_too_big);
  // Three 8-byte fragments: each frame fits, the message does not.
  r = decode(client_frame(opcode::text, std::string(8, 'a'), false) +
                 client_frame(opcode::continuation, std::string(8, 'b'), false) +
                 client_frame(opcode::continuation, std::string(8, 'c')),
             limits);
  EXPECT_EQ(r.status, decode_status::error);
  EXPECT_EQ(r.error.code, close_code::message_too_big);
  EXPECT_TRUE(r.events.empty());
  // Exactly at the limits is fine.
  r = decode(client_frame(opcode::text, std::string(10, 'a'), false) +
                 client_frame(opcode::continuation, std::string(10, 'b')),
             limits);
  EXPECT_EQ(r.status, decode_status::ok);
  EXPECT_EQ(r.events,
            (std::vector<std::string>{"text:" + std::string(10, 'a') + std::string(10, 'b')}));
}

TEST(FrameDecode, OversizeIsRejectedFromTheHeaderAlone) {
  // Only the header arrives: the decoder must not wait for (or buffer) the payload.
  decoder d({1024, 1024, true});
  recorder r;
  std::uint8_t h[max_header_bytes];
  const std::size_t n = encode_masked_header(h, opcode::binary, 1u << 30, kKey);
  EXPECT_EQ(d.feed({reinterpret_cast<char*>(h), n}, r), decode_status::error);
  EXPECT_EQ(d.error().code, close_code::message_too_big);
}

TEST(FrameDecode, HoldsNoMemoryBetweenMessages) {
  decoder d({});
  recorder r;
  std::string wire = client_frame(opcode::text, std::string(5000, 'x'));
  // Split: the message is assembled in the decoder, then released.
  ASSERT_EQ(d.feed({wire.data(), 100}, r), decode_status::ok);
  EXPECT_TRUE(d.holds_partial_data());
  ASSERT_EQ(d.feed({wire.data() + 100, wire.size() - 100}, r), decode_status::ok);
  EXPECT_FALSE(d.holds_partial_data());
  EXPECT_EQ(d.buffered_bytes(), std::string().capacity());
  EXPECT_EQ(r.events.size(), 1u);
}

TEST(FrameDecode, ServerFramesDecodeWhenMaskIsNotRequired) {
  // Clients of our own (tests, benchmarks) decode what the server sends with the same code.
  std::uint8_t h[max_header_bytes];
  const std::size_t n = encode_header(h, opcode::text, 2);
  std::string wire(reinterpret_cast<char*>(h), n);
  wire += "hi";
  const auto r = decode(wire, {1024, 1024, false});
  EXPECT_EQ(r.events, (std::vector<std::string>{"text:hi"}));
}

}  // namespace
}  // namespace herald::ws
