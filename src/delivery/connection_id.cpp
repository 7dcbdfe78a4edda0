#include "herald/delivery/connection_id.hpp"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>

#include <openssl/rand.h>

namespace herald {
namespace {

constexpr char kUrlAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

bool is_url_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

}  // namespace

namespace {

void fill_random(unsigned char* out, std::size_t size) {
  if (RAND_bytes(out, static_cast<int>(size)) != 1) {
    // Without randomness ids would be guessable; refusing to run is the only safe answer.
    std::abort();
  }
}

// Bytes from the CSPRNG fetched 4 KiB at a time per thread: a request id per routed message
// would otherwise cost a RAND_bytes call each (locks, a getpid, a provider lookup: 12 % of the
// CPU of the echo benchmark). Each byte is handed out once.
struct random_pool {
  std::array<unsigned char, 4096> bytes{};
  std::size_t used = bytes.size();

  void take(unsigned char* out, std::size_t size) {
    if (bytes.size() - used < size) {
      fill_random(bytes.data(), bytes.size());
      used = 0;
    }
    std::memcpy(out, bytes.data() + used, size);
    std::memset(bytes.data() + used, 0, size);  // nothing handed out stays in memory
    used += size;
  }
};

}  // namespace

void random_bytes(void* out, std::size_t size) {
  auto* p = static_cast<unsigned char*>(out);
  if (size > 256) return fill_random(p, size);
  thread_local random_pool pool;
  pool.take(p, size);
}

std::string base64url_encode(const unsigned char* data, std::size_t size) {
  std::string out;
  out.reserve((size * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const unsigned v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out += kUrlAlphabet[(v >> 18) & 63];
    out += kUrlAlphabet[(v >> 12) & 63];
    out += kUrlAlphabet[(v >> 6) & 63];
    out += kUrlAlphabet[v & 63];
  }
  if (const std::size_t rest = size - i; rest != 0) {
    unsigned v = data[i] << 16;
    if (rest == 2) v |= data[i + 1] << 8;
    out += kUrlAlphabet[(v >> 18) & 63];
    out += kUrlAlphabet[(v >> 12) & 63];
    if (rest == 2) out += kUrlAlphabet[(v >> 6) & 63];
  }
  return out;
}

connection_id connection_id::generate() {
  unsigned char raw[15];
  random_bytes(raw, sizeof raw);
  const std::string text = base64url_encode(raw, sizeof raw);
  connection_id id;
  std::memcpy(id.chars_.data(), text.data(), length);
  return id;
}

std::optional<connection_id> connection_id::parse(std::string_view text) {
  if (text.size() != length || !std::all_of(text.begin(), text.end(), is_url_char)) {
    return std::nullopt;
  }
  connection_id id;
  std::memcpy(id.chars_.data(), text.data(), length);
  return id;
}

std::string make_request_id() {
  unsigned char raw[12];
  random_bytes(raw, sizeof raw);
  return base64url_encode(raw, sizeof raw);
}

}  // namespace herald
