#include <string>

#include <gtest/gtest.h>

#include "herald/ws/utf8.hpp"

namespace herald::ws {
namespace {

TEST(Utf8, AcceptsValidText) {
  for (const std::string& s :
       {std::string(""), std::string("plain ascii, long enough for the fast path"),
        std::string("caf\xc3\xa9"), std::string("\xe2\x82\xac"),  // U+20AC
        std::string("\xf0\x9f\x98\x80"),                          // U+1F600
        std::string("\xed\x9f\xbf"),                              // U+D7FF
        std::string("\xee\x80\x80"),                              // U+E000
        std::string("\xf4\x8f\xbf\xbf"),                          // U+10FFFF
        std::string("\x00", 1), std::string("\x7f")}) {
    EXPECT_TRUE(is_valid_utf8(s)) << s;
  }
}

TEST(Utf8, RejectsInvalidSequences) {
  for (const std::string& s : {
           std::string("\x80"),              // lone continuation
           std::string("\xc0\x80"),          // overlong NUL
           std::string("\xc1\xbf"),          // overlong
           std::string("\xe0\x80\x80"),      // overlong 3-byte
           std::string("\xe0\x9f\xbf"),      // overlong 3-byte (upper edge)
           std::string("\xf0\x80\x80\x80"),  // overlong 4-byte
           std::string("\xf0\x8f\xbf\xbf"),  // overlong 4-byte (upper edge)
           std::string("\xed\xa0\x80"),      // U+D800 surrogate
           std::string("\xed\xbf\xbf"),      // U+DFFF surrogate
           std::string("\xf4\x90\x80\x80"),  // U+110000
           std::string("\xf5\x80\x80\x80"),  // invalid lead byte
           std::string("\xff"),
           std::string("\xc3"),      // truncated
           std::string("\xe2\x82"),  // truncated
           std::string("\xc3\x28"),  // bad continuation
           std::string("abcdefgh\xc3\x28ijklmnop"),
       }) {
    EXPECT_FALSE(is_valid_utf8(s)) << testing::PrintToString(s);
  }
}

TEST(Utf8, IncrementalMatchesWholeAtEverySplit) {
  const std::string text =
      "Gr\xc3\xbc\xc3\x9f"
      "e \xe2\x82\xac 100 \xf0\x9f\x98\x80 done.";
  for (std::size_t a = 0; a <= text.size(); ++a) {
    for (std::size_t b = a; b <= text.size(); ++b) {
      utf8_validator v;
      ASSERT_TRUE(v.feed(std::string_view(text).substr(0, a)));
      ASSERT_TRUE(v.feed(std::string_view(text).substr(a, b - a)));
      ASSERT_TRUE(v.feed(std::string_view(text).substr(b)));
      EXPECT_TRUE(v.complete()) << a << "," << b;
    }
  }
}

TEST(Utf8, IncompleteAtEndIsNotComplete) {
  utf8_validator v;
  EXPECT_TRUE(v.feed("\xf0\x9f"));
  EXPECT_FALSE(v.complete());
  EXPECT_TRUE(v.feed("\x98\x80"));
  EXPECT_TRUE(v.complete());
}

TEST(Utf8, StaysFailedUntilReset) {
  utf8_validator v;
  EXPECT_FALSE(v.feed("\xff"));
  EXPECT_FALSE(v.feed("ok"));
  EXPECT_FALSE(v.complete());
  v.reset();
  EXPECT_TRUE(v.feed("ok"));
  EXPECT_TRUE(v.complete());
}

}  // namespace
}  // namespace herald::ws
