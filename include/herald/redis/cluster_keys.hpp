// Redis Cluster's key space, socket-free: which of the 16384 slots a key (or a shard channel)
// hashes to, hash tags, and the MOVED / ASK redirections a node answers with.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace herald::redis {

inline constexpr unsigned cluster_slots = 16384;

// CRC-16/XMODEM (poly 0x1021, init 0, no reflection): CRC16("123456789") = 0x31C3.
std::uint16_t crc16(std::string_view data);

// The part of a key that is hashed: the bytes between the first '{' and the first '}' after
// it, when there is at least one; otherwise the whole key ("foo{}{bar}" is hashed whole).
std::string_view hash_tag(std::string_view key);

// HASH_SLOT = CRC16(hash_tag(key)) mod 16384; channels of SPUBLISH / SSUBSCRIBE alike.
unsigned key_slot(std::string_view key);

// "-MOVED 3999 127.0.0.1:6381" / "-ASK 3999 :6381" (an empty host: the node that answered).
struct redirect {
  enum class kind { moved, ask } type = kind::moved;
  unsigned slot = 0;
  std::string host;
  int port = 0;
};
// nullopt when `error` (the reply's text, with or without the leading '-') is no redirection.
std::optional<redirect> parse_redirect(std::string_view error, std::string_view answered_by);

}  // namespace herald::redis
