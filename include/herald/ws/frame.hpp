// RFC 6455 framing, socket-free: an incremental decoder for what clients send and
// header encoders for what the server sends. Sessions feed it bytes; tests and fuzzers too.
//
// Why our own codec instead of beast::websocket::stream: a gateway's scale limits are idle
// memory per connection and fan-out cost. With our own framing an idle connection holds no
// read or write buffer (reads go into one buffer per worker thread), several queued messages
// leave in one gathered write, a broadcast payload is shared by every recipient and framed
// with a 2-10 byte header each, and control frames (pong, close) jump the queue.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "herald/ws/utf8.hpp"

namespace herald::ws {

enum class opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

// Close status codes (RFC 6455 section 7.4.1 and IANA registry).
namespace close_code {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
inline constexpr std::uint16_t no_status = 1005;  // never on the wire
inline constexpr std::uint16_t abnormal = 1006;   // never on the wire
inline constexpr std::uint16_t invalid_payload = 1007;
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t message_too_big = 1009;
inline constexpr std::uint16_t internal_error = 1011;
inline constexpr std::uint16_t try_again_later = 1013;
}  // namespace close_code

// May this code appear in a close frame's payload?
bool is_valid_wire_close_code(std::uint16_t code);

inline constexpr std::size_t max_header_bytes = 14;  // 2 + 8 (length) + 4 (mask)
inline constexpr std::size_t max_control_payload = 125;

// Writes an unmasked (server-to-client) frame header; returns its length (2..10). `compressed`
// sets RSV1: the first frame of a permessage-deflate compressed message (RFC 7692).
std::size_t encode_header(std::uint8_t* out, opcode op, std::uint64_t payload_length,
                          bool fin = true, bool compressed = false);

// Writes a masked (client-to-server) header; returns its length (6..14). The payload must be
// masked with the same key (apply_mask).
std::size_t encode_masked_header(std::uint8_t* out, opcode op, std::uint64_t payload_length,
                                 std::array<std::uint8_t, 4> key, bool fin = true,
                                 bool compressed = false);

// XORs `data` with the key, starting at key offset `offset % 4`.
void apply_mask(char* data, std::size_t size, std::array<std::uint8_t, 4> key,
                std::size_t offset = 0);

// Payload of a close frame: 2-byte code + reason, the reason cut at a UTF-8 boundary to fit 125
// bytes.
std::string close_payload(std::uint16_t code, std::string_view reason);

// The sizes a frame decoder accepts (websocket.max_frame_bytes, max_message_bytes).
struct decoder_limits {
  std::size_t max_frame_bytes = 128 * 1024;
  std::size_t max_message_bytes = 128 * 1024;
  bool require_masked = true;  // servers must reject unmasked client frames
  // permessage-deflate was agreed: RSV1 may mark a data message's first frame as compressed.
  // max_message_bytes then bounds the compressed size; the inflated size is the session's.
  bool allow_compressed = false;
};

// Receives decoded messages and control frames. Payload views are valid only during the call.
// Each callback returns false to stop decoding (e.g. the session started closing).
class frame_handler {
 public:
  virtual ~frame_handler() = default;
  // A text or binary message. A compressed one (RSV1) is passed as received: its UTF-8 is not
  // checked here, as only the inflated text can be.
  virtual bool on_message(opcode op, std::string_view payload, bool compressed) = 0;
  virtual bool on_ping(std::string_view payload) = 0;
  virtual bool on_pong(std::string_view payload) = 0;
  virtual bool on_close(std::uint16_t code, std::string_view reason) = 0;  // 1005 if no code
};

// Why decoding failed: the close code to send and a short reason.
struct decode_error {
  std::uint16_t code = 0;
  std::string_view reason;  // static text
};

enum class decode_status { ok, stopped, error };

// Incremental frame decoder. Holds memory only while a frame or message is incomplete.
class decoder {
 public:
  explicit decoder(const decoder_limits& limits) : limits_(limits) {}

  // Consumes all of `data` (unmasking it in place), calling the handler for each complete
  // message or control frame. Whole unfragmented messages are passed without copying.
  decode_status feed(std::span<char> data, frame_handler& handler);

  // Bytes of the last feed() that were consumed: all of them unless it stopped or failed, in
  // which case decoding stopped right after the frame that made it stop.
  std::size_t consumed() const { return consumed_; }
  const decode_error& error() const { return error_; }
  bool holds_partial_data() const { return header_len_ != 0 || in_frame_ || in_message_; }
  // Bytes held for incomplete frames/messages (for memory accounting).
  std::size_t buffered_bytes() const {
    return message_.capacity() + (control_ ? max_control_payload : 0);
  }

 private:
  decode_status feed_frames(std::span<char> data, frame_handler& handler, std::size_t& pos);
  decode_status fail(std::uint16_t code, std::string_view reason);
  decode_status begin_frame();
  decode_status finish_frame(frame_handler& handler, std::string_view whole_payload);
  bool parse_header(const std::uint8_t* h, std::size_t available, std::size_t& header_size);

  // (Ordered to pack: every idle connection holds one.)
  decoder_limits limits_;
  decode_error error_;
  std::size_t consumed_ = 0;

  // Current frame.
  std::uint64_t frame_size_ = 0;
  std::uint64_t frame_remaining_ = 0;

  // Current data message (fragmented, or a frame split across reads).
  std::string message_;

  // Control frame payload split across reads (at most 125 bytes): allocated only then, as
  // every idle connection holds a decoder.
  std::unique_ptr<std::array<char, max_control_payload>> control_;

  // Header being collected across reads.
  std::array<std::uint8_t, max_header_bytes> header_{};
  std::uint8_t header_len_ = 0;
  std::uint8_t control_len_ = 0;

  std::array<std::uint8_t, 4> mask_{};
  bool in_frame_ = false;
  bool frame_fin_ = false;
  std::uint8_t frame_rsv_ = 0;
  opcode frame_op_ = opcode::continuation;
  bool frame_masked_ = false;
  bool in_message_ = false;
  opcode message_op_ = opcode::text;
  bool message_compressed_ = false;
  utf8_validator utf8_;
};

}  // namespace herald::ws
