// Structured logging on spdlog: one line per event, an event name plus typed fields,
// rendered as `key=value` text or as one JSON object per line. Thread-safe.
// Never pass secrets or message bodies as fields at info level or above.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include "herald/common/json_text.hpp"
#include "herald/config/config.hpp"

namespace spdlog {
class logger;
namespace sinks {
class sink;
}
}  // namespace spdlog

namespace herald {

// One key/value pair of a log line. Holds views: valid only for the duration of the call.
struct log_field {
  using value_type = std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool>;

  log_field(std::string_view k, std::string_view v) : key(k), value(v) {}
  log_field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  log_field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  log_field(std::string_view k, bool v) : key(k), value(v) {}
  log_field(std::string_view k, double v) : key(k), value(v) {}
  template <class Int,
            class = std::enable_if_t<std::is_integral_v<Int> && !std::is_same_v<Int, bool>>>
  log_field(std::string_view k, Int v) : key(k) {
    if constexpr (std::is_signed_v<Int>) {
      value = static_cast<std::int64_t>(v);
    } else {
      value = static_cast<std::uint64_t>(v);
    }
  }

  std::string_view key;
  value_type value;
};

using log_fields = std::initializer_list<log_field>;

// One line per event (text or JSON) through spdlog, with the node id.
class logger {
 public:
  // Logs to stdout. `node_id`, when set, is added to every line.
  logger(const log_config& cfg, std::string node_id = {});
  // Logs to the given sink (tests capture lines this way).
  logger(const log_config& cfg, std::shared_ptr<spdlog::sinks::sink> sink,
         std::string node_id = {});
  ~logger();
  logger(const logger&) = delete;
  logger& operator=(const logger&) = delete;

  bool enabled(log_level level) const;
  void log(log_level level, std::string_view event, log_fields fields = {});

  void trace(std::string_view event, log_fields f = {}) { log(log_level::trace, event, f); }
  void debug(std::string_view event, log_fields f = {}) { log(log_level::debug, event, f); }
  void info(std::string_view event, log_fields f = {}) { log(log_level::info, event, f); }
  void warn(std::string_view event, log_fields f = {}) { log(log_level::warn, event, f); }
  void error(std::string_view event, log_fields f = {}) { log(log_level::error, event, f); }
  void critical(std::string_view event, log_fields f = {}) { log(log_level::critical, event, f); }

  void flush();

 private:
  std::string render(std::string_view event, log_fields fields) const;

  std::shared_ptr<spdlog::logger> impl_;
  log_format format_;
  std::string node_id_;
};

}  // namespace herald
