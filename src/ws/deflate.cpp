#include "herald/ws/deflate.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <vector>

namespace herald::ws {
namespace {

constexpr std::string_view kTail("\x00\x00\xff\xff", 4);

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

// Splits at `sep` outside double quotes.
std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  bool quoted = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '"') quoted = !quoted;
    if (s[i] == sep && !quoted) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  out.push_back(s.substr(start));
  return out;
}

// A window-bits value: 8..15, digits only (a quoted value is unquoted first).
std::optional<int> window_bits(std::string_view v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  if (v.empty() || v.size() > 2) return std::nullopt;
  int n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  if (n < 8 || n > 15) return std::nullopt;
  return n;
}

// One offer's parameters, or nothing if the offer must be declined.
struct offer {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  std::optional<int> server_max_window_bits;
  bool client_max_window_bits = false;
};

std::optional<offer> parse_offer(const std::vector<std::string_view>& params) {
  offer o;
  bool seen[4] = {false, false, false, false};
  for (std::size_t i = 1; i < params.size(); ++i) {
    const std::string_view p = trim(params[i]);
    const auto eq = p.find('=');
    const std::string_view name = trim(p.substr(0, eq));
    const std::optional<std::string_view> value =
        eq == std::string_view::npos ? std::nullopt
                                     : std::optional<std::string_view>(trim(p.substr(eq + 1)));
    int which = -1;
    if (iequals(name, "server_no_context_takeover")) {
      which = 0;
      if (value) return std::nullopt;
      o.server_no_context_takeover = true;
    } else if (iequals(name, "client_no_context_takeover")) {
      which = 1;
      if (value) return std::nullopt;
      o.client_no_context_takeover = true;
    } else if (iequals(name, "server_max_window_bits")) {
      which = 2;
      if (!value) return std::nullopt;
      o.server_max_window_bits = window_bits(*value);
      if (!o.server_max_window_bits) return std::nullopt;
    } else if (iequals(name, "client_max_window_bits")) {
      which = 3;
      if (value && !window_bits(*value)) return std::nullopt;
      o.client_max_window_bits = true;
    } else {
      return std::nullopt;  // a parameter we do not know
    }
    if (seen[which]) return std::nullopt;  // twice
    seen[which] = true;
  }
  return o;
}

}  // namespace

std::optional<deflate_agreement> negotiate_deflate(std::string_view extensions,
                                                   const deflate_settings& ours) {
  for (const std::string_view item : split(extensions, ',')) {
    const auto params = split(item, ';');
    if (!iequals(trim(params[0]), "permessage-deflate")) continue;
    const auto o = parse_offer(params);
    if (!o) continue;
    deflate_agreement a;
    a.server_window_bits = ours.server_max_window_bits;
    a.response = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
    if (o->server_max_window_bits) {
      // zlib cannot compress with a 256-byte window: an offer that insists on one is declined.
      if (*o->server_max_window_bits < 9) continue;
      a.server_window_bits = std::min(a.server_window_bits, *o->server_max_window_bits);
      a.response += "; server_max_window_bits=" + std::to_string(a.server_window_bits);
    }
    return a;
  }
  return std::nullopt;
}

std::string deflate_message(std::string_view message, int window_bits, int level) {
  // One compressor per thread and window size, reset between messages (no context is kept).
  struct compressor {
    z_stream z{};
    int level = -1;
    bool ready = false;
    ~compressor() {
      if (ready) deflateEnd(&z);
    }
  };
  thread_local std::array<compressor, 16> pool;
  window_bits = std::clamp(window_bits, 9, 15);
  compressor& c = pool[static_cast<std::size_t>(window_bits)];
  if (c.ready && c.level != level) {
    deflateEnd(&c.z);
    c.ready = false;
  }
  if (!c.ready) {
    c.z = z_stream{};
    if (deflateInit2(&c.z, level, Z_DEFLATED, -window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      return {};
    c.ready = true;
    c.level = level;
  } else {
    deflateReset(&c.z);
  }
  std::string out;
  out.resize(deflateBound(&c.z, static_cast<uLong>(message.size())) + 16);
  c.z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(message.data()));
  c.z.avail_in = static_cast<uInt>(message.size());
  std::size_t produced = 0;
  for (;;) {
    c.z.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    c.z.avail_out = static_cast<uInt>(out.size() - produced);
    const int rc = deflate(&c.z, Z_SYNC_FLUSH);
    produced = out.size() - c.z.avail_out;
    if (rc != Z_OK && rc != Z_BUF_ERROR) return {};
    if (c.z.avail_in == 0 && c.z.avail_out != 0) break;
    out.resize(out.size() * 2);
  }
  out.resize(produced);
  if (out.size() >= 4 && std::string_view(out).substr(out.size() - 4) == kTail)
    out.resize(out.size() - 4);
  return out;
}

struct inflater::state {
  z_stream z{};
  bool ready = false;
};

inflater::inflater() : z_(std::make_unique<state>()) {
  z_->ready = inflateInit2(&z_->z, -15) == Z_OK;
}

inflater::~inflater() {
  if (z_->ready) inflateEnd(&z_->z);
}

inflater::status inflater::inflate(std::string_view compressed, std::size_t max_bytes,
                                   std::string& out) {
  out.clear();
  if (!z_->ready) return status::corrupt;
  inflateReset(&z_->z);
  const auto fail = [&out](status s) {
    out.clear();
    return s;
  };
  std::array<char, 16 * 1024> chunk;
  // The message, then the tail RFC 7692 removed from it.
  for (const std::string_view part : {compressed, kTail}) {
    z_->z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(part.data()));
    z_->z.avail_in = static_cast<uInt>(part.size());
    for (;;) {
      z_->z.next_out = reinterpret_cast<Bytef*>(chunk.data());
      z_->z.avail_out = static_cast<uInt>(chunk.size());
      const int rc = ::inflate(&z_->z, Z_SYNC_FLUSH);
      const std::size_t got = chunk.size() - z_->z.avail_out;
      if (out.size() + got > max_bytes) return fail(status::too_big);
      out.append(chunk.data(), got);
      if (rc == Z_STREAM_END) return status::ok;  // a final block: what follows is ignored
      if (rc != Z_OK && rc != Z_BUF_ERROR) return fail(status::corrupt);
      // This part is read and nothing more is pending (the chunk was not filled), or zlib can
      // make no progress without more input.
      if ((z_->z.avail_in == 0 && z_->z.avail_out != 0) || (rc == Z_BUF_ERROR && got == 0)) break;
    }
  }
  return status::ok;
}

}  // namespace herald::ws
