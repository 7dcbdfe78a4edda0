// permessage-deflate without sockets: what is agreed for each kind of offer, the RFC's own
// example bytes, round trips, and the bound on what a client's message may inflate to.
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "herald/ws/deflate.hpp"

namespace herald::ws {
namespace {

std::string agreed(std::string_view offer, deflate_settings ours = {}) {
  const auto a = negotiate_deflate(offer, ours);
  return a ? a->response : "declined";
}

constexpr std::string_view kBoth =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

TEST(Deflate, NegotiationFollowsRfc7692) {
  // What browsers send.
  EXPECT_EQ(agreed("permessage-deflate; client_max_window_bits"), kBoth);
  // Node's ws default offer, and an offer with everything.
  EXPECT_EQ(agreed("permessage-deflate; client_max_window_bits=15"), kBoth);
  EXPECT_EQ(agreed("permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                   "server_max_window_bits=10; client_max_window_bits=12"),
            std::string(kBoth) + "; server_max_window_bits=10");
  // The server's window is the smaller of the offer and the setting.
  const auto a = negotiate_deflate("permessage-deflate; server_max_window_bits=14", {12});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->server_window_bits, 12);
  EXPECT_EQ(a->response, std::string(kBoth) + "; server_max_window_bits=12");
  EXPECT_EQ(negotiate_deflate("permessage-deflate", {11})->server_window_bits, 11);
  // Quoted values, any case, spaces.
  EXPECT_EQ(agreed("PerMessage-Deflate ;  server_max_window_bits=\"9\""),
            std::string(kBoth) + "; server_max_window_bits=9");
  // No permessage-deflate at all, or only other extensions.
  EXPECT_EQ(agreed(""), "declined");
  EXPECT_EQ(agreed("x-webkit-deflate-frame"), "declined");
}

TEST(Deflate, OffersWeCannotAcceptAreDeclinedAndTheNextOneIsTried) {
  for (const char* bad : {
           "permessage-deflate; server_max_window_bits",        // a value is required
           "permessage-deflate; server_max_window_bits=16",     // out of range
           "permessage-deflate; server_max_window_bits=07",     // not 8..15
           "permessage-deflate; client_max_window_bits=7",      // out of range
           "permessage-deflate; server_no_context_takeover=1",  // takes no value
           "permessage-deflate; client_no_context_takeover; client_no_context_takeover",  // twice
           "permessage-deflate; mystery_parameter",                                       // unknown
           "permessage-deflate; server_max_window_bits=8",  // zlib cannot do a 256-byte window
       }) {
    EXPECT_EQ(agreed(bad), "declined") << bad;
    // A client may list alternatives: the first acceptable one is taken.
    EXPECT_EQ(agreed(std::string(bad) + ", permessage-deflate; server_max_window_bits=11"),
              std::string(kBoth) + "; server_max_window_bits=11")
        << bad;
  }
}

TEST(Deflate, TheRfcExampleAndRoundTrips) {
  // RFC 7692 section 7.2.3.1: "Hello" compressed without context.
  EXPECT_EQ(deflate_message("Hello", 15), std::string("\xf2\x48\xcd\xc9\xc9\x07\x00", 7));
  inflater in;
  std::string out;
  EXPECT_EQ(in.inflate(std::string("\xf2\x48\xcd\xc9\xc9\x07\x00", 7), 100, out),
            inflater::status::ok);
  EXPECT_EQ(out, "Hello");
  // Section 7.2.3.6: an empty message.
  EXPECT_EQ(in.inflate(std::string("\x00", 1), 100, out), inflater::status::ok);
  EXPECT_EQ(out, "");
  // A JSON notification in every window size, twice (the compressor is reused).
  std::string json = R"({"type":"message","channel":"orders.42","data":{"status":"shipped",)";
  for (int i = 0; i < 20; ++i)
    json += R"("item)" + std::to_string(i) + R"(":"a parcel on its way to you",)";
  json += R"("end":true}})";
  for (int bits = 9; bits <= 15; ++bits) {
    for (int round = 0; round < 2; ++round) {
      const std::string z = deflate_message(json, bits);
      EXPECT_LT(z.size(), json.size() / 3) << bits;
      ASSERT_EQ(in.inflate(z, json.size(), out), inflater::status::ok) << bits;
      EXPECT_EQ(out, json);
    }
  }
  // Incompressible data still round-trips.
  std::mt19937 rng(7);
  std::string noise(50000, '\0');
  for (auto& c : noise)
    c = static_cast<char>(rng());
  ASSERT_EQ(in.inflate(deflate_message(noise, 15), noise.size(), out), inflater::status::ok);
  EXPECT_EQ(out, noise);
}

TEST(Deflate, InflatingIsBoundedAndCorruptDataIsRefused) {
  // A bomb: 10 MB of zeros is about 10 KB compressed.
  const std::string zeros(10 * 1024 * 1024, '\0');
  const std::string bomb = deflate_message(zeros, 15);
  EXPECT_LT(bomb.size(), 20000u);
  inflater in;
  std::string out;
  EXPECT_EQ(in.inflate(bomb, 128 * 1024, out), inflater::status::too_big);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(in.inflate(bomb, zeros.size(), out), inflater::status::ok);
  EXPECT_EQ(out.size(), zeros.size());
  // Exactly at the limit is fine; one byte over is not.
  const std::string z = deflate_message("0123456789", 15);
  EXPECT_EQ(in.inflate(z, 10, out), inflater::status::ok);
  EXPECT_EQ(in.inflate(z, 9, out), inflater::status::too_big);
  // Not DEFLATE data (a reserved block type), then a good message again on the same inflater.
  EXPECT_EQ(in.inflate(std::string("\xff\xff\xff\xff", 4), 100, out), inflater::status::corrupt);
  EXPECT_EQ(in.inflate(z, 100, out), inflater::status::ok);
  EXPECT_EQ(out, "0123456789");
}

}  // namespace
}  // namespace herald::ws
