// permessage-deflate (RFC 7692), socket-free: the negotiation of Sec-WebSocket-Extensions, the
// compression of a message and the bounded decompression of a client's.
//
// What Herald agrees to, whatever the client offers:
// - server_no_context_takeover, always: each message is compressed on its own, so a
//   publication's compressed bytes are the same for every recipient that agreed on the same
//   window, and are made once per publication, not once per recipient.
// - client_no_context_takeover, always (RFC 7692 section 7.1.1.2 lets a server ask for it): a
//   connection keeps no 32 KiB inflate window between messages, so idle connections cost no
//   compression memory; one inflater per worker serves them all.
// - server_max_window_bits: the client's value if it offered one (9..15; 8 is answered 9, which
//   zlib needs, only when the client allows it), else Herald's setting.
// - client_max_window_bits: left to the client (its messages are inflated with a 15-bit window,
//   which reads any smaller one).
// An offer with an unknown or repeated parameter, or a value out of range, is declined (the
// next one is considered), as section 7 requires.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace herald::ws {

// What this server is configured to allow.
struct deflate_settings {
  int server_max_window_bits = 15;  // 9..15: our compression window when the client sets none
};

// The agreed parameters of one connection.
struct deflate_agreement {
  int server_window_bits = 15;  // the window our messages are compressed with (9..15)
  std::string response;         // the Sec-WebSocket-Extensions value to answer with
};

// The first permessage-deflate offer in a Sec-WebSocket-Extensions value (a header may be
// repeated: join them with ", ") that Herald can accept, or nothing (the connection then goes
// uncompressed, which is not an error).
std::optional<deflate_agreement> negotiate_deflate(std::string_view extensions,
                                                   const deflate_settings& ours);

// One message compressed on its own (no context kept): the raw DEFLATE bytes with the final
// empty block's 00 00 ff ff removed, as RFC 7692 section 7.2.1 sends them.
std::string deflate_message(std::string_view message, int window_bits, int level = 6);

// Inflates client messages (each on its own: client_no_context_takeover). One per worker; not
// thread-safe.
class inflater {
 public:
  enum class status { ok, too_big, corrupt };

  inflater();
  ~inflater();
  inflater(const inflater&) = delete;
  inflater& operator=(const inflater&) = delete;

  // Inflates one message's payload (RFC 7692: the 00 00 ff ff tail is added here) into `out`,
  // stopping with too_big as soon as more than `max_bytes` would come out: a compression bomb
  // costs at most max_bytes of memory and the work to produce them.
  status inflate(std::string_view compressed, std::size_t max_bytes, std::string& out);

 private:
  struct state;
  std::unique_ptr<state> z_;
};

}  // namespace herald::ws
