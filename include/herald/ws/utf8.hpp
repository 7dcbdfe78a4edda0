// Incremental UTF-8 validation (RFC 3629), as RFC 6455 requires for text messages:
// fragments are checked as they arrive so invalid text fails fast, mid-message.
#pragma once

#include <cstdint>
#include <string_view>

namespace herald::ws {

// Incremental UTF-8 validation across fragments (fails fast, as RFC 6455 asks).
class utf8_validator {
 public:
  // Checks the next piece of a message. Returns false at the first invalid byte; after that the
  // validator stays failed until reset().
  bool feed(std::string_view piece);
  // True when everything fed so far is complete, valid UTF-8 (no sequence cut short).
  bool complete() const { return !failed_ && need_ == 0; }
  void reset() { need_ = 0, lo_ = 0x80, hi_ = 0xBF, failed_ = false; }

 private:
  std::uint8_t need_ = 0;   // continuation bytes still expected
  std::uint8_t lo_ = 0x80;  // allowed range of the next continuation byte
  std::uint8_t hi_ = 0xBF;
  bool failed_ = false;
};

// Whole-string check.
bool is_valid_utf8(std::string_view s);

}  // namespace herald::ws
