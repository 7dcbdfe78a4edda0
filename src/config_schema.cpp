#include "config_schema.hpp"

#include <algorithm>
#include <cctype>
#include <limits>
#include <utility>

namespace herald::detail {
namespace {

using nlohmann::json;

std::string describe(const json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

[[noreturn]] void bad(const std::string& key, const std::string& expected, const json& got) {
  throw config_error(key, "expected " + expected + ", got " + describe(got));
}

std::string as_string(const std::string& key, const json& v, const std::string& expected) {
  if (!v.is_string()) bad(key, expected, v);
  return v.get<std::string>();
}

bool to_bool(const std::string& key, const json& v, bool from_text) {
  if (v.is_boolean()) return v.get<bool>();
  if (from_text && v.is_string()) {
    std::string s = v.get<std::string>();
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    if (s == "true" || s == "1" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "0" || s == "no" || s == "off") return false;
  }
  bad(key, "true or false", v);
}

std::uint64_t to_count(const std::string& key, const json& v, bool from_text) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0) return v.get<std::uint64_t>();
  if (from_text && v.is_string()) {
    const std::string s = v.get<std::string>();
    if (!s.empty() && s.size() <= 19 &&
        std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); })) {
      return std::stoull(s);
    }
  }
  bad(key, "a non-negative integer", v);
}

std::size_t to_size(const std::string& key, const json& v) {
  if (v.is_number_unsigned()) return v.get<std::size_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0) return v.get<std::size_t>();
  if (v.is_string()) {
    try {
      return parse_size(v.get<std::string>());
    } catch (const std::invalid_argument&) {
    }
  }
  bad(key, "a size in bytes such as 65536, \"64KiB\" or \"1MiB\"", v);
}

duration to_duration(const std::string& key, const json& v) {
  if (v.is_string()) {
    try {
      return parse_duration(v.get<std::string>());
    } catch (const std::invalid_argument&) {
    }
  }
  if (v.is_number_integer() && v.get<std::int64_t>() == 0) return duration::zero();
  bad(key, "a duration such as \"250ms\", \"30s\", \"10m\" or \"2h\"", v);
}

std::vector<std::string> to_list(const std::string& key, const json& v, bool from_text) {
  json arr = v;
  if (from_text && v.is_string()) {
    const std::string s = v.get<std::string>();
    if (!s.empty() && s.front() == '[') {
      arr = json::parse(s, nullptr, false);
      if (arr.is_discarded()) bad(key, "a JSON array of strings or a comma-separated list", v);
    } else {
      arr = json::array();
      std::size_t start = 0;
      while (start <= s.size() && !s.empty()) {
        std::size_t comma = s.find(',', start);
        if (comma == std::string::npos) comma = s.size();
        std::string item = s.substr(start, comma - start);
        item.erase(0, item.find_first_not_of(" \t"));
        item.erase(item.find_last_not_of(" \t") + 1);
        if (!item.empty()) arr.push_back(item);
        start = comma + 1;
      }
    }
  }
  if (!arr.is_array()) bad(key, "an array of strings", v);
  std::vector<std::string> out;
  for (const auto& item : arr) {
    if (!item.is_string()) bad(key, "an array of strings", v);
    out.push_back(item.get<std::string>());
  }
  return out;
}

template <class T>
void check_range(const std::string& key, T value, T min, T max, const std::string& shown) {
  if (value < min || value > max) {
    throw config_error(key, "must be between " + shown + ", got " + std::to_string(value));
  }
}

// ---- builders: one per value type; Acc is a generic lambda returning the field.

template <class Acc>
option_def string_opt(std::string key, std::string desc, Acc acc) {
  return {key, "string", std::move(desc),
          [key, acc](config& c, const json& v, bool) { acc(c) = as_string(key, v, "a string"); },
          [acc](const config& c) { return json(acc(c)); }};
}

template <class Acc>
option_def bool_opt(std::string key, std::string desc, Acc acc) {
  return {key, "boolean", std::move(desc),
          [key, acc](config& c, const json& v, bool text) { acc(c) = to_bool(key, v, text); },
          [acc](const config& c) { return json(acc(c)); }};
}

template <class Acc>
option_def count_opt(std::string key, std::string desc, Acc acc, std::uint64_t min,
                     std::uint64_t max) {
  return {key, "integer", std::move(desc),
          [key, acc, min, max](config& c, const json& v, bool text) {
            const std::uint64_t n = to_count(key, v, text);
            check_range<std::uint64_t>(key, n, min, max,
                                       std::to_string(min) + " and " + std::to_string(max));
            acc(c) = static_cast<std::remove_reference_t<decltype(acc(c))>>(n);
          },
          [acc](const config& c) { return json(acc(c)); }};
}

template <class Acc>
option_def size_opt(std::string key, std::string desc, Acc acc, std::size_t min, std::size_t max) {
  return {key, "size", std::move(desc),
          [key, acc, min, max](config& c, const json& v, bool) {
            const std::size_t n = to_size(key, v);
            if (n < min || n > max) {
              throw config_error(key, "must be between " + format_size(min) + " and " +
                                          format_size(max) + ", got " + format_size(n));
            }
            acc(c) = n;
          },
          [acc](const config& c) { return json(format_size(acc(c))); }};
}

template <class Acc>
option_def duration_opt(std::string key, std::string desc, Acc acc, duration min, duration max) {
  return {key, "duration", std::move(desc),
          [key, acc, min, max](config& c, const json& v, bool) {
            const duration d = to_duration(key, v);
            if (d < min || d > max) {
              throw config_error(key, "must be between " + format_duration(min) + " and " +
                                          format_duration(max) + ", got " + format_duration(d));
            }
            acc(c) = d;
          },
          [acc](const config& c) { return json(format_duration(acc(c))); }};
}

template <class E, class Acc>
option_def enum_opt(std::string key, std::string desc, Acc acc,
                    std::vector<std::pair<std::string, E>> names) {
  std::string choices;
  for (const auto& [name, value] : names) {
    if (!choices.empty()) choices += " | ";
    choices += name;
  }
  return {key, choices, std::move(desc),
          [key, acc, names, choices](config& c, const json& v, bool) {
            if (v.is_string()) {
              for (const auto& [name, value] : names) {
                if (name == v.get<std::string>()) {
                  acc(c) = value;
                  return;
                }
              }
            }
            bad(key, "one of " + choices, v);
          },
          [acc, names](const config& c) {
            for (const auto& [name, value] : names) {
              if (value == acc(c)) return json(name);
            }
            return json(nullptr);
          }};
}

template <class Acc>
option_def endpoint_opt(std::string key, std::string desc, Acc acc) {
  return {key, "host:port", std::move(desc),
          [key, acc](config& c, const json& v, bool) {
            const std::string text = as_string(key, v, "\"host:port\"");
            try {
              acc(c) = parse_endpoint(text);
            } catch (const std::invalid_argument& e) {
              throw config_error(key, std::string(e.what()) + ", got \"" + text + "\"");
            }
          },
          [acc](const config& c) { return json(acc(c).to_string()); }};
}

template <class Acc>
option_def list_opt(std::string key, std::string desc, Acc acc) {
  return {key, "list of strings", std::move(desc),
          [key, acc](config& c, const json& v, bool text) { acc(c) = to_list(key, v, text); },
          [acc](const config& c) { return json(acc(c)); }};
}

constexpr std::uint64_t kMaxU64 = std::numeric_limits<std::uint64_t>::max();
constexpr duration kDay = std::chrono::hours(24);
constexpr duration kWeek = std::chrono::hours(24 * 7);
constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * KiB;

}  // namespace

std::vector<option_def> option_table() {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  const duration ms1 = milliseconds(1);
  const duration zero = duration::zero();
  (void)kMaxU64;

  return {
      string_opt(
          "node_id",
          "Name of this node in logs and the cluster; empty generates one at start-up "
          "(1-64 of A-Z a-z 0-9 . _ -)",
          [](auto& c) -> auto& { return c.node_id; }),
      endpoint_opt(
          "listen", "Client listener (ws:// and, with tls.mode, wss://); port 0 picks a free port",
          [](auto& c) -> auto& { return c.listen; }),
      count_opt(
          "threads", "Worker threads, one io_context each; 0 = one per CPU core",
          [](auto& c) -> auto& { return c.threads; }, 0, 256),

      enum_opt<log_level>("log.level", "Minimum level logged",
                          [](auto& c) -> auto& { return c.log.level; },
                          {{"trace", log_level::trace},
                           {"debug", log_level::debug},
                           {"info", log_level::info},
                           {"warn", log_level::warn},
                           {"error", log_level::error},
                           {"critical", log_level::critical},
                           {"off", log_level::off}}),
      enum_opt<log_format>("log.format", "text for people, json for one JSON object per line",
                           [](auto& c) -> auto& { return c.log.format; },
                           {{"text", log_format::text}, {"json", log_format::json}}),

      enum_opt<tls_mode>("tls.mode",
                         "off: ws:// only; auto: ws:// and wss:// on the same port (detected); "
                         "required: wss:// only",
                         [](auto& c) -> auto& { return c.tls.mode; },
                         {{"off", tls_mode::off},
                          {"auto", tls_mode::auto_detect},
                          {"required", tls_mode::required}}),
      string_opt(
          "tls.cert_file", "PEM certificate chain (required unless tls.mode is off)",
          [](auto& c) -> auto& { return c.tls.cert_file; }),
      string_opt(
          "tls.key_file", "PEM private key (required unless tls.mode is off)",
          [](auto& c) -> auto& { return c.tls.key_file; }),
      enum_opt<tls_version>("tls.min_version", "Oldest TLS version accepted",
                            [](auto& c) -> auto& { return c.tls.min_version; },
                            {{"1.2", tls_version::v1_2}, {"1.3", tls_version::v1_3}}),
      string_opt(
          "tls.ciphers", "OpenSSL cipher list for TLS 1.2; empty = OpenSSL's default",
          [](auto& c) -> auto& { return c.tls.ciphers; }),
      string_opt(
          "tls.ciphersuites", "OpenSSL TLS 1.3 cipher suites; empty = OpenSSL's default",
          [](auto& c) -> auto& { return c.tls.ciphersuites; }),
      duration_opt(
          "tls.handshake_timeout", "Time allowed for the TLS handshake",
          [](auto& c) -> auto& { return c.tls.handshake_timeout; }, milliseconds(10), seconds(120)),

      bool_opt(
          "admin.enabled", "Serve the admin listener (health, readiness)",
          [](auto& c) -> auto& { return c.admin.enabled; }),
      endpoint_opt(
          "admin.listen", "Admin listener; keep it on a private interface",
          [](auto& c) -> auto& { return c.admin.listen; }),

      size_opt(
          "http.max_header_bytes",
          "Largest request head (request line and headers); larger gets 431",
          [](auto& c) -> auto& { return c.http.max_header_bytes; }, 1 * KiB, 1 * MiB),
      size_opt(
          "http.max_url_bytes", "Longest request target; longer gets 414",
          [](auto& c) -> auto& { return c.http.max_url_bytes; }, 64, 64 * KiB),
      size_opt(
          "http.max_body_bytes", "Largest HTTP request body; larger gets 413",
          [](auto& c) -> auto& { return c.http.max_body_bytes; }, 0, 64 * MiB),
      duration_opt(
          "http.request_timeout", "Time allowed to receive one complete HTTP request",
          [](auto& c) -> auto& { return c.http.request_timeout; }, milliseconds(10), seconds(600)),
      duration_opt(
          "http.keepalive_timeout", "Idle time allowed between requests on a keep-alive connection",
          [](auto& c) -> auto& { return c.http.keepalive_timeout; }, milliseconds(10),
          seconds(3600)),

      string_opt(
          "websocket.path", "Request path that accepts WebSocket upgrades",
          [](auto& c) -> auto& { return c.websocket.path; }),
      size_opt(
          "websocket.max_message_bytes", "Largest message (all frames); larger closes with 1009",
          [](auto& c) -> auto& { return c.websocket.max_message_bytes; }, 125, 64 * MiB),
      size_opt(
          "websocket.max_frame_bytes", "Largest single frame; larger closes with 1009",
          [](auto& c) -> auto& { return c.websocket.max_frame_bytes; }, 125, 64 * MiB),
      enum_opt<binary_policy>(
          "websocket.binary",
          "Binary frames: reject (close 1003, as AWS) or base64 (pass on, "
          "base64-encoded)",
          [](auto& c) -> auto& { return c.websocket.binary; },
          {{"reject", binary_policy::reject}, {"base64", binary_policy::base64}}),
      duration_opt(
          "websocket.handshake_timeout",
          "Time allowed from TCP accept to a completed upgrade (slowloris defence)",
          [](auto& c) -> auto& { return c.websocket.handshake_timeout; }, milliseconds(10),
          seconds(600)),
      duration_opt(
          "websocket.idle_timeout",
          "Close (1001) when no message went either way for this long; 0 disables",
          [](auto& c) -> auto& { return c.websocket.idle_timeout; }, zero, kDay),
      duration_opt(
          "websocket.max_duration", "Close (1001) connections older than this; 0 disables",
          [](auto& c) -> auto& { return c.websocket.max_duration; }, zero, kWeek),
      duration_opt(
          "websocket.ping_interval",
          "Send a ping when nothing was received for this long; 0 disables",
          [](auto& c) -> auto& { return c.websocket.ping_interval; }, zero, kDay),
      duration_opt(
          "websocket.pong_timeout",
          "Drop the connection (1006) when a ping gets no pong within this time",
          [](auto& c) -> auto& { return c.websocket.pong_timeout; }, ms1, kDay),
      duration_opt(
          "websocket.close_timeout",
          "Time allowed for the peer to answer a close frame before the socket is dropped",
          [](auto& c) -> auto& { return c.websocket.close_timeout; }, ms1, seconds(600)),
      count_opt(
          "websocket.max_connections",
          "Open WebSocket connections per node; further upgrades get 503",
          [](auto& c) -> auto& { return c.websocket.max_connections; }, 1, 100000000),
      list_opt(
          "websocket.subprotocols",
          "Subprotocols this node speaks, in preference order (the first one the client "
          "offers is chosen)",
          [](auto& c) -> auto& { return c.websocket.subprotocols; }),
      count_opt(
          "websocket.send_queue.max_messages",
          "Messages queued for one connection before the overflow policy applies",
          [](auto& c) -> auto& { return c.websocket.send_queue.max_messages; }, 1, 1000000),
      size_opt(
          "websocket.send_queue.max_bytes",
          "Bytes queued for one connection before the overflow policy applies",
          [](auto& c) -> auto& { return c.websocket.send_queue.max_bytes; }, 1 * KiB, 1024 * MiB),
      enum_opt<overflow_policy>(
          "websocket.send_queue.policy",
          "When a connection's queue is full: close (1008, the client reconnects and resumes) "
          "or drop (discard the new message, counted)",
          [](auto& c) -> auto& { return c.websocket.send_queue.policy; },
          {{"close", overflow_policy::close}, {"drop", overflow_policy::drop}}),
      duration_opt(
          "websocket.send_queue.write_timeout",
          "Drop a connection whose socket accepted no bytes for this long (1006)",
          [](auto& c) -> auto& { return c.websocket.send_queue.write_timeout; }, milliseconds(10),
          seconds(3600)),

      duration_opt(
          "shutdown.drain_timeout",
          "On SIGTERM/SIGINT, time allowed for connections to close before exit",
          [](auto& c) -> auto& { return c.shutdown.drain_timeout; }, zero, seconds(3600)),
  };
}

std::string env_name(const std::string& key) {
  std::string out = "HERALD_";
  for (char ch : key) {
    out += (ch == '.' || ch == '-')
               ? '_'
               : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  return out;
}

std::string normalize_key(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (char ch : key) {
    out += (ch == '.' || ch == '-')
               ? '_'
               : static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  return out;
}

namespace {

std::size_t levenshtein(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string_view last_segment(std::string_view key) {
  const auto dot = key.rfind('.');
  return dot == std::string_view::npos ? key : key.substr(dot + 1);
}

}  // namespace

std::string suggest_key(const std::string& unknown, const std::vector<std::string>& known) {
  const std::string norm = normalize_key(unknown);
  std::string best;
  std::size_t best_score = std::numeric_limits<std::size_t>::max();
  for (const auto& candidate : known) {
    const std::size_t whole = levenshtein(norm, normalize_key(candidate));
    // A right name at the wrong level ("idle_timeout" for "websocket.idle_timeout").
    const std::size_t tail =
        levenshtein(normalize_key(last_segment(unknown)), normalize_key(last_segment(candidate)));
    const std::size_t score = std::min(whole, tail + 1);
    if (score < best_score) {
      best_score = score;
      best = candidate;
    }
  }
  const std::size_t allowed = std::max<std::size_t>(2, norm.size() / 4);
  return best_score <= allowed ? best : std::string();
}

}  // namespace herald::detail
