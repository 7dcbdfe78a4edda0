#include "herald/ws/utf8.hpp"

#include <cstring>

namespace herald::ws {

bool utf8_validator::feed(std::string_view piece) {
  if (failed_) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(piece.data());
  const auto* end = p + piece.size();
  while (p < end) {
    if (need_ == 0) {
      // ASCII fast path, eight bytes at a time.
      while (end - p >= 8) {
        std::uint64_t word;
        std::memcpy(&word, p, 8);
        if (word & 0x8080808080808080ull) break;
        p += 8;
      }
      if (p == end) break;
      const unsigned char c = *p++;
      if (c < 0x80) continue;
      // Table 3-7 of the Unicode standard: lead byte decides length and the first
      // continuation byte's range (no overlongs, no surrogates, nothing above U+10FFFF).
      lo_ = 0x80;
      hi_ = 0xBF;
      if (c >= 0xC2 && c <= 0xDF) {
        need_ = 1;
      } else if (c == 0xE0) {
        need_ = 2, lo_ = 0xA0;
      } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
        need_ = 2;
      } else if (c == 0xED) {
        need_ = 2, hi_ = 0x9F;
      } else if (c == 0xF0) {
        need_ = 3, lo_ = 0x90;
      } else if (c >= 0xF1 && c <= 0xF3) {
        need_ = 3;
      } else if (c == 0xF4) {
        need_ = 3, hi_ = 0x8F;
      } else {
        failed_ = true;
        return false;
      }
      continue;
    }
    const unsigned char c = *p++;
    if (c < lo_ || c > hi_) {
      failed_ = true;
      return false;
    }
    --need_;
    lo_ = 0x80;
    hi_ = 0xBF;
  }
  return true;
}

bool is_valid_utf8(std::string_view s) {
  utf8_validator v;
  return v.feed(s) && v.complete();
}

}  // namespace herald::ws
