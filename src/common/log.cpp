#include "herald/common/log.hpp"

#include <charconv>
#include <cmath>

#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace herald {
namespace {

spdlog::level::level_enum to_spdlog(log_level level) {
  switch (level) {
    case log_level::trace:
      return spdlog::level::trace;
    case log_level::debug:
      return spdlog::level::debug;
    case log_level::info:
      return spdlog::level::info;
    case log_level::warn:
      return spdlog::level::warn;
    case log_level::error:
      return spdlog::level::err;
    case log_level::critical:
      return spdlog::level::critical;
    case log_level::off:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

bool needs_quotes(std::string_view s) {
  if (s.empty()) return true;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || c == '"' || c == '=' || c == '\\' || u >= 0x7f) return true;
  }
  return false;
}

template <class Number>
void append_number(std::string& out, Number n) {
  char buf[32];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, n);
  if (ec == std::errc()) out.append(buf, ptr);
}

void append_double(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  char buf[32];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::general, 6);
  if (ec == std::errc()) out.append(buf, ptr);
}

}  // namespace

logger::logger(const log_config& cfg, std::string node_id)
    : logger(cfg, std::make_shared<spdlog::sinks::stdout_sink_mt>(), std::move(node_id)) {}

logger::logger(const log_config& cfg, std::shared_ptr<spdlog::sinks::sink> sink,
               std::string node_id)
    : impl_(std::make_shared<spdlog::logger>("herald", std::move(sink))),
      format_(cfg.format),
      node_id_(std::move(node_id)) {
  impl_->set_level(to_spdlog(cfg.level));
  if (format_ == log_format::json) {
    impl_->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%v})", spdlog::pattern_time_type::utc));
  } else {
    impl_->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %v", spdlog::pattern_time_type::local));
  }
  // Warnings and errors reach the terminal (or the container log) at once.
  impl_->flush_on(spdlog::level::warn);
}

logger::~logger() {
  flush();
}

bool logger::enabled(log_level level) const {
  return impl_->should_log(to_spdlog(level));
}

void logger::flush() {
  impl_->flush();
}

void logger::log(log_level level, std::string_view event, log_fields fields) {
  const auto lvl = to_spdlog(level);
  if (!impl_->should_log(lvl)) return;
  impl_->log(lvl, "{}", render(event, fields));
}

std::string logger::render(std::string_view event, log_fields fields) const {
  std::string out;
  out.reserve(64 + fields.size() * 24);
  if (format_ == log_format::json) {
    out += "\"event\":\"";
    append_json_escaped(out, event);
    out += '"';
    if (!node_id_.empty()) {
      out += ",\"nodeId\":\"";
      append_json_escaped(out, node_id_);
      out += '"';
    }
    for (const auto& f : fields) {
      out += ",\"";
      append_json_escaped(out, f.key);
      out += "\":";
      std::visit(
          [&out](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::string_view>) {
              out += '"';
              append_json_escaped(out, v);
              out += '"';
            } else if constexpr (std::is_same_v<T, bool>) {
              out += v ? "true" : "false";
            } else if constexpr (std::is_same_v<T, double>) {
              append_double(out, v);
            } else {
              append_number(out, v);
            }
          },
          f.value);
    }
    return out;
  }
  out += event;
  for (const auto& f : fields) {
    out += ' ';
    out += f.key;
    out += '=';
    std::visit(
        [&out](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string_view>) {
            if (needs_quotes(v)) {
              out += '"';
              append_json_escaped(out, v);
              out += '"';
            } else {
              out += v;
            }
          } else if constexpr (std::is_same_v<T, bool>) {
            out += v ? "true" : "false";
          } else if constexpr (std::is_same_v<T, double>) {
            append_double(out, v);
          } else {
            append_number(out, v);
          }
        },
        f.value);
  }
  return out;
}

}  // namespace herald
