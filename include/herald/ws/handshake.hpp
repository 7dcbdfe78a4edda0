// The parts of the RFC 6455 opening handshake that need no socket: key checks, the accept
// hash, header token lists and subprotocol choice.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace herald::ws {

// Sec-WebSocket-Key must be the base64 encoding of 16 bytes.
bool is_valid_client_key(std::string_view key);

// Sec-WebSocket-Accept for a client key: base64(SHA-1(key + RFC 6455 GUID)).
std::string accept_key(std::string_view client_key);

// Does a comma-separated header value (e.g. Connection: keep-alive, Upgrade) contain `token`,
// compared case-insensitively?
bool header_has_token(std::string_view value, std::string_view token);

// Splits a comma-separated header value into trimmed, non-empty items.
std::vector<std::string> split_header_list(std::string_view value);

// First of our supported subprotocols (in our preference order) that the client offered.
std::optional<std::string> choose_subprotocol(const std::vector<std::string>& offered,
                                              const std::vector<std::string>& supported);

// Standard base64 (with padding), used for keys and base64-wrapped binary messages.
std::string base64_encode(std::string_view data);
// Returns nullopt unless `text` is canonical padded base64.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace herald::ws
