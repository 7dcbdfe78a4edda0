#include "herald/config/config.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "config/config_schema.hpp"
#include "herald/common/json_input.hpp"
#include "herald/common/text.hpp"

namespace herald {

using nlohmann::json;

config_error::config_error(std::string key, std::string message)
    : std::runtime_error(key.empty() ? message : key + ": " + message),
      key_(std::move(key)),
      detail_(std::move(message)) {}

std::string endpoint::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

namespace {

std::uint64_t parse_number_prefix(std::string_view text, std::string_view& rest) {
  std::uint64_t value = 0;
  const auto* begin = text.data();
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr == begin) throw std::invalid_argument("expected a number");
  rest = text.substr(static_cast<std::size_t>(ptr - begin));
  return value;
}

}  // namespace

duration parse_duration(std::string_view text) {
  const std::string t(trim(text));
  std::string_view rest;
  const std::uint64_t n = parse_number_prefix(t, rest);
  std::uint64_t factor_ms = 0;
  if (rest == "ms") {
    factor_ms = 1;
  } else if (rest == "s") {
    factor_ms = 1000;
  } else if (rest == "m" || rest == "min") {
    factor_ms = 60'000;
  } else if (rest == "h") {
    factor_ms = 3'600'000;
  } else if (rest.empty() && n == 0) {
    return duration::zero();
  } else {
    throw std::invalid_argument("unknown duration unit");
  }
  if (n > (std::uint64_t{1} << 40) / factor_ms) throw std::invalid_argument("duration too large");
  return duration(static_cast<duration::rep>(n * factor_ms));
}

std::size_t parse_size(std::string_view text) {
  const std::string t(trim(text));
  std::string_view rest;
  const std::uint64_t n = parse_number_prefix(t, rest);
  while (!rest.empty() && rest.front() == ' ')
    rest.remove_prefix(1);
  std::uint64_t factor = 0;
  if (rest.empty() || rest == "B") {
    factor = 1;
  } else if (rest == "KiB") {
    factor = 1024;
  } else if (rest == "MiB") {
    factor = 1024 * 1024;
  } else if (rest == "GiB") {
    factor = 1024ull * 1024 * 1024;
  } else {
    throw std::invalid_argument("unknown size unit");
  }
  if (n > (std::uint64_t{1} << 50) / factor) throw std::invalid_argument("size too large");
  return static_cast<std::size_t>(n * factor);
}

endpoint parse_endpoint(std::string_view text) {
  endpoint ep;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      throw std::invalid_argument("expected \"[ipv6]:port\"");
    }
    ep.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) throw std::invalid_argument("expected \"host:port\"");
    ep.host = std::string(text.substr(0, colon));
    if (ep.host.find(':') != std::string::npos) {
      throw std::invalid_argument("IPv6 addresses need brackets, e.g. \"[::1]:8080\"");
    }
    port_text = text.substr(colon + 1);
  }
  if (ep.host.empty()) ep.host = "0.0.0.0";
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535 ||
      port_text.empty()) {
    throw std::invalid_argument("port must be a number from 0 to 65535");
  }
  ep.port = static_cast<std::uint16_t>(port);
  return ep;
}

std::string format_duration(duration d) {
  const auto ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string format_size(std::size_t bytes) {
  if (bytes != 0 && bytes % (1024ull * 1024 * 1024) == 0)
    return std::to_string(bytes >> 30) + "GiB";
  if (bytes != 0 && bytes % (1024 * 1024) == 0) return std::to_string(bytes >> 20) + "MiB";
  if (bytes != 0 && bytes % 1024 == 0) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes);
}

namespace {

// Whether a secret's value is (or contains) what --print-config writes instead of the secret.
bool holds_placeholder(const json& value) {
  if (value.is_string())
    return value.get_ref<const std::string&>().find(redacted_secret) != std::string::npos;
  if (value.is_array() || value.is_object()) {
    for (const auto& item : value) {
      if (holds_placeholder(item)) return true;
    }
  }
  return false;
}

// Where each key's value came from (a file, an environment variable, a flag), so an error found
// only when keys are checked together can still say where to fix it.
using origin_map = std::map<std::string, std::string>;

// Applies values (file, environment, flags) to a config, remembering where each came from.
struct applier {
  const std::vector<detail::option_def>& table;
  std::vector<std::string> keys;
  std::set<std::string> sections;
  origin_map* origins = nullptr;

  explicit applier(const std::vector<detail::option_def>& t) : table(t) {
    for (const auto& o : table) {
      keys.push_back(o.key);
      for (auto dot = o.key.find('.'); dot != std::string::npos; dot = o.key.find('.', dot + 1)) {
        sections.insert(o.key.substr(0, dot));
      }
    }
  }

  const detail::option_def* find(const std::string& key) const {
    for (const auto& o : table) {
      if (o.key == key) return &o;
    }
    return nullptr;
  }

  const detail::option_def* find_normalized(const std::string& name) const {
    const std::string n = detail::normalize_key(name);
    for (const auto& o : table) {
      if (detail::normalize_key(o.key) == n) return &o;
    }
    return nullptr;
  }

  [[noreturn]] void unknown(const std::string& key, const std::string& origin) const {
    std::string message = "unknown key" + (origin.empty() ? "" : " (in " + origin + ")");
    const std::string hint = detail::suggest_key(key, keys);
    if (!hint.empty()) message += "; did you mean '" + hint + "'?";
    throw config_error(key, message);
  }

  void apply_object(config& cfg, const json& obj, const std::string& prefix,
                    const std::string& origin) const {
    for (const auto& [name, value] : obj.items()) {
      std::string key = prefix;
      if (!key.empty()) key += '.';
      key += name;
      if (const auto* opt = find(key)) {
        set(*opt, cfg, value, false, origin, origins);
      } else if (sections.count(key) && value.is_object()) {
        apply_object(cfg, value, key, origin);
      } else if (sections.count(key)) {
        throw config_error(key, "expected an object (a section of settings), got " + value.dump());
      } else {
        unknown(key, origin);
      }
    }
  }

  static void set(const detail::option_def& opt, config& cfg, const json& value, bool from_text,
                  const std::string& origin, origin_map* origins) {
    if (opt.secret && holds_placeholder(value)) {
      throw config_error(opt.key,
                         "holds the placeholder --print-config writes instead of a "
                         "secret; put the secret back, or print the configuration with "
                         "--print-config --show-secrets" +
                             (origin.empty() ? "" : " (in " + origin + ")"));
    }
    try {
      opt.set(cfg, value, from_text);
    } catch (const config_error& e) {
      if (origin.empty()) throw;
      throw config_error(e.key(), e.detail() + " (in " + origin + ")");
    }
    if (origins && !origin.empty()) (*origins)[opt.key] = origin;
  }

  // The origin of `key` or of the structured key it lies in ("routes.$default.integration" was
  // set with "routes"); empty for a default.
  static std::string origin_of(const std::string& key, const origin_map& origins) {
    for (std::string k = key;;) {
      if (const auto it = origins.find(k); it != origins.end()) return it->second;
      const auto cut = k.find_last_of(".[");
      if (cut == std::string::npos) return {};
      k.resize(cut);
    }
  }
};

// Kubernetes injects these for a Service whose name starts with "herald" (HERALD_PORT,
// HERALD_SERVICE_HOST, HERALD_PORT_8080_TCP_ADDR, ...): they are not settings, and not typos.
bool kubernetes_service_link(const std::string& name, const std::string& value) {
  const std::string_view n(name);
  // <NAME>_SERVICE_HOST, <NAME>_SERVICE_PORT, <NAME>_SERVICE_PORT_<PORTNAME>
  if (n.ends_with("_SERVICE_HOST")) return true;
  if (const auto at = n.find("_SERVICE_PORT"); at != std::string_view::npos) {
    const auto rest = n.substr(at + 13);
    if (rest.empty() || rest.front() == '_') return true;
  }
  // <NAME>_PORT=tcp://10.0.0.1:8080
  if (n.ends_with("_PORT") &&
      (value.starts_with("tcp://") || value.starts_with("udp://") || value.starts_with("sctp://")))
    return true;
  // <NAME>_PORT_<port>_<TCP|UDP|SCTP>[_PROTO|_PORT|_ADDR]
  for (auto at = n.find("_PORT_"); at != std::string_view::npos; at = n.find("_PORT_", at + 1)) {
    std::string_view rest = n.substr(at + 6);
    std::size_t digits = 0;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9')
      ++digits;
    if (digits == 0 || digits == rest.size() || rest[digits] != '_') continue;
    rest.remove_prefix(digits + 1);
    for (const std::string_view proto : {"TCP", "UDP", "SCTP"}) {
      if (!rest.starts_with(proto)) continue;
      const auto tail = rest.substr(proto.size());
      if (tail.empty() || tail == "_PROTO" || tail == "_PORT" || tail == "_ADDR") return true;
    }
  }
  return false;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw config_error("", "cannot read config file " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// nlohmann's message reads "[json.exception.parse_error.101] parse error at line 3, column 5: ...";
// keep it without the internal tag.
std::string describe_parse_error(const std::string& what) {
  const auto tag_end = what.find("] ");
  return tag_end == std::string::npos ? what : what.substr(tag_end + 2);
}

}  // namespace

config load_config(const config_sources& sources) {
  const auto table = detail::option_table();
  config cfg;
  applier apply(table);
  apply.origins = &cfg.origins;

  if (!sources.file_path.empty() || !sources.file_text.empty()) {
    const std::string origin = sources.file_path.empty() ? "config" : sources.file_path;
    const std::string text =
        sources.file_text.empty() ? read_file(sources.file_path) : sources.file_text;
    json_status status = json_status::ok;
    json doc = parse_json(text, default_json_max_depth, &status, /*ignore_comments=*/true);
    if (status == json_status::too_deep) {
      throw config_error("", origin + ": " + describe(status, default_json_max_depth));
    }
    if (status != json_status::ok) {
      // Parsed again with exceptions only to say where the syntax error is (line, column).
      try {
        const json located = json::parse(text, nullptr, true, /*ignore_comments=*/true);
      } catch (const json::parse_error& e) {
        throw config_error("", origin + ": invalid JSON: " + describe_parse_error(e.what()));
      }
      throw config_error("", origin + ": invalid JSON");
    }
    if (!doc.is_object()) throw config_error("", origin + ": the top level must be a JSON object");
    apply.apply_object(cfg, doc, "", origin);
  }

  for (const auto& [name, value] : sources.environment) {
    const detail::option_def* opt = nullptr;
    for (const auto& o : table) {
      if (detail::env_name(o.key) == name) opt = &o;
    }
    if (!opt) {
      if (kubernetes_service_link(name, value)) continue;
      std::vector<std::string> env_names;
      env_names.reserve(table.size());
      for (const auto& o : table)
        env_names.push_back(detail::env_name(o.key));
      std::string message = "not a Herald setting (in the environment); unset it";
      const std::string hint = detail::suggest_key(name, env_names);
      if (!hint.empty()) message += ", or did you mean " + hint + "?";
      throw config_error(name, message);
    }
    applier::set(*opt, cfg, json(value), true, name, &cfg.origins);
  }

  for (const auto& [name, value] : sources.flags) {
    const auto* opt = apply.find_normalized(name);
    if (!opt) apply.unknown(name, "--" + name);
    applier::set(*opt, cfg, json(value), true, "--" + name, &cfg.origins);
  }

  try {
    validate(cfg);
  } catch (const config_error& e) {
    throw located(cfg, e);
  }
  return cfg;
}

config_error located(const config& cfg, const config_error& e) {
  const std::string where = applier::origin_of(e.key(), cfg.origins);
  if (where.empty() || e.detail().find(" (in ") != std::string::npos) return e;
  return config_error(e.key(), e.detail() + " (in " + where + ")");
}

const integration_config* find_integration(const config& cfg, const std::string& name) {
  for (const auto& ic : cfg.integrations) {
    if (ic.name == name) return &ic;
  }
  if (name == "echo") {
    static const integration_config builtin_echo = [] {
      integration_config ic;
      ic.name = "echo";
      ic.kind = integration_kind::echo;
      return ic;
    }();
    return &builtin_echo;
  }
  return nullptr;
}

namespace {

// A secret as --print-config shows it: the placeholder, or for a URL only its password
// ("redis://:<redacted>@host:6379/0"; a URL without one has nothing to hide); in a list, each
// item; in a JWT key, its "secret".
json redact(const json& value) {
  if (value.is_array()) {
    json out = json::array();
    for (const auto& item : value)
      out.push_back(redact(item));
    return out;
  }
  if (value.is_object()) {
    json out = value;
    if (const auto it = out.find("secret"); it != out.end() && it->is_string())
      *it = redacted_secret;
    return out;
  }
  if (!value.is_string()) return value;
  const std::string& text = value.get_ref<const std::string&>();
  if (text.empty()) return value;
  const auto scheme = text.find("://");
  if (scheme == std::string::npos) return json(redacted_secret);
  const auto at = text.find('@', scheme + 3);
  if (at == std::string::npos) return value;
  const auto colon = text.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return value;  // a user name only
  return json(text.substr(0, colon + 1) + std::string(redacted_secret) + text.substr(at));
}

}  // namespace

std::string dump_config(const config& cfg, bool show_secrets) {
  json out = json::object();
  for (const auto& opt : detail::option_table()) {
    json* node = &out;
    std::string_view key = opt.key;
    for (auto dot = key.find('.'); dot != std::string_view::npos; dot = key.find('.')) {
      node = &(*node)[std::string(key.substr(0, dot))];
      key.remove_prefix(dot + 1);
    }
    nlohmann::json value = opt.get(cfg);
    if (opt.secret && !show_secrets) value = redact(value);
    (*node)[std::string(key)] = std::move(value);
  }
  return out.dump(2);
}

std::string config_reference_markdown() {
  const config defaults;
  std::string out;
  std::string section = "-";
  for (const auto& opt : detail::option_table()) {
    const auto dot = opt.key.find('.');
    const std::string s = dot == std::string::npos ? "(top level)" : opt.key.substr(0, dot);
    if (s != section) {
      section = s;
      out += "\n### " + s +
             "\n\n| Key | Type | Default | Environment | Description |\n|---|---|---|---|---|\n";
    }
    std::string type = opt.type;
    for (std::size_t p = type.find('|'); p != std::string::npos; p = type.find('|', p + 2))
      type.insert(p, "\\");
    std::string def = opt.get(defaults).dump();
    for (std::size_t p = def.find('|'); p != std::string::npos; p = def.find('|', p + 2))
      def.insert(p, "\\");
    out += "| `" + opt.key + "` | " + type + " | `" + def + "` | `" + detail::env_name(opt.key) +
           "` | " + opt.description + " |\n";
  }
  return out;
}

std::vector<option_info> describe_options() {
  std::vector<option_info> out;
  for (const auto& opt : detail::option_table()) {
    out.push_back({opt.key, opt.type, detail::env_name(opt.key), "--" + opt.key, opt.description});
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> herald_environment(char** envp) {
  std::vector<std::pair<std::string, std::string>> out;
  for (char** e = envp; e && *e; ++e) {
    std::string_view entry(*e);
    if (entry.rfind("HERALD_", 0) != 0) continue;
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    std::string name(entry.substr(0, eq));
    if (name == "HERALD_CONFIG") continue;
    out.emplace_back(std::move(name), std::string(entry.substr(eq + 1)));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace herald
