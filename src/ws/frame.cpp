#include "herald/ws/frame.hpp"

#include <algorithm>
#include <cstring>

namespace herald::ws {
namespace {

bool is_control(opcode op) {
  return (static_cast<std::uint8_t>(op) & 0x8) != 0;
}

bool is_known(std::uint8_t op) {
  return op <= 0x2 || (op >= 0x8 && op <= 0xA);
}

std::size_t write_length(std::uint8_t* out, std::uint8_t first, std::uint64_t len, bool masked) {
  out[0] = first;
  const std::uint8_t mask_bit = masked ? 0x80 : 0x00;
  if (len < 126) {
    out[1] = static_cast<std::uint8_t>(mask_bit | len);
    return 2;
  }
  if (len <= 0xFFFF) {
    out[1] = mask_bit | 126;
    out[2] = static_cast<std::uint8_t>(len >> 8);
    out[3] = static_cast<std::uint8_t>(len);
    return 4;
  }
  out[1] = mask_bit | 127;
  for (int i = 0; i < 8; ++i)
    out[2 + i] = static_cast<std::uint8_t>(len >> (56 - 8 * i));
  return 10;
}

}  // namespace

bool is_valid_wire_close_code(std::uint16_t code) {
  if (code >= 1000 && code <= 1003) return true;
  if (code >= 1007 && code <= 1014) return true;  // 1012-1014 registered by IANA
  return code >= 3000 && code <= 4999;            // registered and private-use ranges
}

std::size_t encode_header(std::uint8_t* out, opcode op, std::uint64_t payload_length, bool fin,
                          bool compressed) {
  const auto first = static_cast<std::uint8_t>((fin ? 0x80 : 0x00) | (compressed ? 0x40 : 0x00) |
                                               static_cast<std::uint8_t>(op));
  return write_length(out, first, payload_length, false);
}

std::size_t encode_masked_header(std::uint8_t* out, opcode op, std::uint64_t payload_length,
                                 std::array<std::uint8_t, 4> key, bool fin, bool compressed) {
  const auto first = static_cast<std::uint8_t>((fin ? 0x80 : 0x00) | (compressed ? 0x40 : 0x00) |
                                               static_cast<std::uint8_t>(op));
  const std::size_t n = write_length(out, first, payload_length, true);
  std::memcpy(out + n, key.data(), 4);
  return n + 4;
}

void apply_mask(char* data, std::size_t size, std::array<std::uint8_t, 4> key, std::size_t offset) {
  std::uint8_t k[8];
  for (std::size_t j = 0; j < 8; ++j)
    k[j] = key[(offset + j) & 3];
  std::uint64_t k64;
  std::memcpy(&k64, k, 8);
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, data + i, 8);
    w ^= k64;
    std::memcpy(data + i, &w, 8);
  }
  for (; i < size; ++i)
    data[i] = static_cast<char>(data[i] ^ static_cast<char>(k[i & 7]));
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
  std::size_t n = std::min<std::size_t>(reason.size(), max_control_payload - 2);
  // Never cut a multi-byte character in half.
  while (n < reason.size() && n > 0 && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80)
    --n;
  std::string out;
  out.reserve(2 + n);
  out += static_cast<char>(code >> 8);
  out += static_cast<char>(code & 0xFF);
  out.append(reason.data(), n);
  return out;
}

decode_status decoder::fail(std::uint16_t code, std::string_view reason) {
  error_ = {code, reason};
  return decode_status::error;
}

bool decoder::parse_header(const std::uint8_t* h, std::size_t available, std::size_t& header_size) {
  if (available < 2) return false;
  const std::uint8_t len7 = h[1] & 0x7F;
  const bool masked = (h[1] & 0x80) != 0;
  const std::size_t ext = len7 == 126 ? 2 : (len7 == 127 ? 8 : 0);
  const std::size_t need = 2 + ext + (masked ? 4 : 0);
  if (available < need) return false;
  std::uint64_t len = len7;
  if (ext != 0) {
    len = 0;
    for (std::size_t i = 0; i < ext; ++i)
      len = (len << 8) | h[2 + i];
  }
  frame_fin_ = (h[0] & 0x80) != 0;
  frame_rsv_ = h[0] & 0x70;
  frame_op_ = static_cast<opcode>(h[0] & 0x0F);
  frame_masked_ = masked;
  frame_size_ = len;
  if (masked) std::memcpy(mask_.data(), h + 2 + ext, 4);
  header_size = need;
  return true;
}

decode_status decoder::begin_frame() {
  // RSV1 is permessage-deflate's "compressed" bit, on the first frame of a data message only
  // (RFC 7692 section 6); RSV2 and RSV3 belong to no extension we agree to.
  const bool rsv1 = (frame_rsv_ & 0x40) != 0;
  if ((frame_rsv_ & 0x30) != 0 || (rsv1 && (!limits_.allow_compressed || is_control(frame_op_) ||
                                            frame_op_ == opcode::continuation))) {
    return fail(close_code::protocol_error, "reserved bits set");
  }
  if (!is_known(static_cast<std::uint8_t>(frame_op_))) {
    return fail(close_code::protocol_error, "unknown opcode");
  }
  if (limits_.require_masked && !frame_masked_) {
    return fail(close_code::protocol_error, "client frames must be masked");
  }
  if (frame_size_ >> 63) return fail(close_code::protocol_error, "invalid frame length");
  if (is_control(frame_op_)) {
    if (!frame_fin_) return fail(close_code::protocol_error, "fragmented control frame");
    if (frame_size_ > max_control_payload) {
      return fail(close_code::protocol_error, "control frame too large");
    }
  } else {
    if (frame_op_ == opcode::continuation && !in_message_) {
      return fail(close_code::protocol_error, "continuation frame without a message");
    }
    if (frame_op_ != opcode::continuation && in_message_) {
      return fail(close_code::protocol_error, "new message before the previous one ended");
    }
    if (message_.size() + frame_size_ > limits_.max_message_bytes) {
      return fail(close_code::message_too_big, "message too large");
    }
    if (frame_size_ > limits_.max_frame_bytes) {
      return fail(close_code::message_too_big, "frame too large");
    }
    if (frame_op_ != opcode::continuation) {
      in_message_ = true;
      message_op_ = frame_op_;
      message_compressed_ = rsv1;
      utf8_.reset();
    }
  }
  in_frame_ = true;
  frame_remaining_ = frame_size_;
  return decode_status::ok;
}

decode_status decoder::finish_frame(frame_handler& handler, std::string_view whole_payload) {
  in_frame_ = false;
  bool go_on = true;
  switch (frame_op_) {
    case opcode::close: {
      std::uint16_t code = close_code::no_status;
      std::string_view reason;
      if (whole_payload.size() == 1) return fail(close_code::protocol_error, "invalid close frame");
      if (whole_payload.size() >= 2) {
        code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(whole_payload[0]) << 8) |
                                          static_cast<std::uint8_t>(whole_payload[1]));
        if (!is_valid_wire_close_code(code)) {
          return fail(close_code::protocol_error, "invalid close code");
        }
        reason = whole_payload.substr(2);
        if (!is_valid_utf8(reason))
          return fail(close_code::invalid_payload, "invalid UTF-8 in close reason");
      }
      go_on = handler.on_close(code, reason);
      break;
    }
    case opcode::ping:
      go_on = handler.on_ping(whole_payload);
      break;
    case opcode::pong:
      go_on = handler.on_pong(whole_payload);
      break;
    default: {
      if (!frame_fin_) return decode_status::ok;  // more fragments to come
      in_message_ = false;
      if (message_.empty()) {
        // Whole message in one frame and one read: delivered in place.
        if (message_op_ == opcode::text && !message_compressed_ && !is_valid_utf8(whole_payload)) {
          return fail(close_code::invalid_payload, "invalid UTF-8 in text message");
        }
        go_on = handler.on_message(message_op_, whole_payload, message_compressed_);
      } else {
        if (message_op_ == opcode::text && !message_compressed_ && !utf8_.complete()) {
          return fail(close_code::invalid_payload, "invalid UTF-8 in text message");
        }
        go_on = handler.on_message(message_op_, message_, message_compressed_);
        std::string().swap(message_);  // idle connections hold no buffer
      }
      break;
    }
  }
  return go_on ? decode_status::ok : decode_status::stopped;
}

decode_status decoder::feed(std::span<char> data, frame_handler& handler) {
  std::size_t pos = 0;
  const decode_status st = feed_frames(data, handler, pos);
  consumed_ = st == decode_status::ok ? data.size() : pos;
  return st;
}

decode_status decoder::feed_frames(std::span<char> data, frame_handler& handler, std::size_t& pos) {
  const std::size_t n = data.size();
  while (pos < n) {
    if (!in_frame_) {
      std::size_t header_size = 0;
      if (header_len_ == 0 && parse_header(reinterpret_cast<const std::uint8_t*>(data.data() + pos),
                                           n - pos, header_size)) {
        pos += header_size;
      } else {
        // Collect a header split across reads, a byte at a time until its size is known.
        while (pos < n && header_len_ < max_header_bytes) {
          header_[header_len_++] = static_cast<std::uint8_t>(data[pos++]);
          if (parse_header(header_.data(), header_len_, header_size)) break;
        }
        if (!parse_header(header_.data(), header_len_, header_size)) break;  // need more bytes
        header_len_ = 0;
      }
      if (auto st = begin_frame(); st != decode_status::ok) return st;
      if (frame_size_ == 0) {
        if (auto st = finish_frame(handler, {}); st != decode_status::ok) return st;
        continue;
      }
      if (pos == n) break;
    }

    const auto avail = static_cast<std::size_t>(std::min<std::uint64_t>(frame_remaining_, n - pos));
    char* p = data.data() + pos;
    const std::uint64_t offset = frame_size_ - frame_remaining_;
    if (frame_masked_) apply_mask(p, avail, mask_, static_cast<std::size_t>(offset & 3));
    pos += avail;
    frame_remaining_ -= avail;

    if (is_control(frame_op_)) {
      if (frame_remaining_ == 0 && control_len_ == 0) {
        if (auto st = finish_frame(handler, {p, avail}); st != decode_status::ok) return st;
      } else {
        if (!control_) control_ = std::make_unique<std::array<char, max_control_payload>>();
        std::memcpy(control_->data() + control_len_, p, avail);
        control_len_ = static_cast<std::uint8_t>(control_len_ + avail);
        if (frame_remaining_ == 0) {
          const auto held = std::move(control_);  // freed once handled
          const std::string_view whole(held->data(), control_len_);
          control_len_ = 0;
          if (auto st = finish_frame(handler, whole); st != decode_status::ok) return st;
        }
      }
      continue;
    }

    const bool whole_frame_here = offset == 0 && frame_remaining_ == 0;
    if (whole_frame_here && frame_fin_ && message_.empty() && frame_op_ != opcode::continuation) {
      if (auto st = finish_frame(handler, {p, avail}); st != decode_status::ok) return st;
      continue;
    }
    if (message_op_ == opcode::text && !message_compressed_ && !utf8_.feed({p, avail})) {
      return fail(close_code::invalid_payload, "invalid UTF-8 in text message");
    }
    message_.append(p, avail);
    if (frame_remaining_ == 0) {
      if (auto st = finish_frame(handler, {}); st != decode_status::ok) return st;
    }
  }
  return decode_status::ok;
}

}  // namespace herald::ws
