// The table of configuration keys: how each is parsed, checked and printed.
// Internal to config.cpp / config_schema.cpp; the rest of Herald sees only herald::config.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "herald/config/config.hpp"

namespace herald::detail {

// One configuration key: its type, default, documentation, and how it is read and written.
struct option_def {
  std::string key;          // dotted path
  std::string type;         // human-readable type for docs and errors
  std::string description;  // one line
  // Parses `value` into cfg. `from_text` is true for environment variables and flags,
  // whose values arrive as strings and may be coerced (e.g. "true", "42", "a,b").
  std::function<void(config& cfg, const nlohmann::json& value, bool from_text)> set;
  std::function<nlohmann::json(const config& cfg)> get;
  bool secret = false;  // printed redacted by --print-config
};

// The table, in documentation order. Built on each call: it is small and only used at start-up.
std::vector<option_def> option_table();

// "websocket.idle_timeout" -> "HERALD_WEBSOCKET_IDLE_TIMEOUT".
std::string env_name(const std::string& key);

// "log-format", "log_format", "log.format" all -> "log_format" (compare keys this way).
std::string normalize_key(std::string_view key);

// Closest known key to `unknown`, or empty if nothing is close.
std::string suggest_key(const std::string& unknown, const std::vector<std::string>& known);

}  // namespace herald::detail
