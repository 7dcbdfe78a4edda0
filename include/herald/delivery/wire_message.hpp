// A server-to-client message as it goes on the wire: built once and shared by every recipient
// (each connection only adds its own 2-10 byte frame header), with its permessage-deflate form
// made on demand. With no context takeover, the compressed bytes of a message depend only on
// the window size, so the first compressed recipient compresses it, on whatever worker it runs,
// and every other recipient with the same window sends the same bytes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace herald {

class wire_message {
 public:
  explicit wire_message(std::string bytes) : bytes_(std::move(bytes)) {}
  ~wire_message();
  wire_message(const wire_message&) = delete;
  wire_message& operator=(const wire_message&) = delete;

  const std::string& bytes() const { return bytes_; }
  std::size_t size() const { return bytes_.size(); }

  // The message compressed for permessage-deflate (RFC 7692, a message on its own) with this
  // window (9..15) and level. Thread-safe: the first caller for a window compresses (`made` is
  // then true) while a concurrent caller for it waits; later callers share the bytes, which
  // live as long as the message. Empty if zlib failed (send the message uncompressed).
  std::string_view deflated(int window_bits, int level, bool& made) const;

 private:
  struct variant;
  std::string bytes_;
  // The compressed forms made so far, a list that only grows at its head; bit 0 is set while a
  // caller is adding one.
  mutable std::atomic<std::uintptr_t> variants_{0};
};

using message_ptr = std::shared_ptr<const wire_message>;

inline message_ptr make_message(std::string bytes) {
  return std::make_shared<const wire_message>(std::move(bytes));
}

}  // namespace herald
