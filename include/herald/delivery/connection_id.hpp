// Connection and request identifiers: 120 random bits from the OS CSPRNG, URL-safe base64,
// fixed length. Unique across nodes and restarts without coordination, and unguessable, so
// knowing one id gives no handle on another connection.
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace herald {

// A connection's id: 20 URL-safe characters, unguessable, kept inline (no allocation).
class connection_id {
 public:
  static constexpr std::size_t length = 20;  // 15 random bytes in base64url

  connection_id() { chars_.fill('A'); }
  static connection_id generate();
  // Accepts exactly `length` base64url characters; anything else is not an id.
  static std::optional<connection_id> parse(std::string_view text);

  std::string_view view() const { return {chars_.data(), chars_.size()}; }
  std::string str() const { return std::string(view()); }

  friend bool operator==(const connection_id&, const connection_id&) = default;

 private:
  std::array<char, length> chars_;
};

// A fresh id for one event or API request (96 random bits, 16 URL-safe characters).
std::string make_request_id();

// Fills `out` with cryptographically strong random bytes (aborts if the CSPRNG fails).
void random_bytes(void* out, std::size_t size);

// URL-safe base64 without padding.
std::string base64url_encode(const unsigned char* data, std::size_t size);

}  // namespace herald

template <>
struct std::hash<herald::connection_id> {
  std::size_t operator()(const herald::connection_id& id) const noexcept {
    return std::hash<std::string_view>{}(id.view());
  }
};
