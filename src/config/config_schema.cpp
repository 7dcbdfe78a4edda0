#include "config/config_schema.hpp"

#include "herald/common/json_input.hpp"
#include "herald/common/url.hpp"

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
      arr = parse_json(s, default_json_max_depth);
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

template <class Acc>
option_def number_opt(std::string key, std::string desc, Acc acc, double min, double max) {
  return {key, "number", std::move(desc),
          [key, acc, min, max](config& c, const json& v, bool text) {
            double d = 0;
            if (v.is_number()) {
              d = v.get<double>();
            } else if (text && v.is_string()) {
              try {
                std::size_t used = 0;
                d = std::stod(v.get<std::string>(), &used);
                if (used != v.get<std::string>().size()) bad(key, "a number", v);
              } catch (const std::logic_error&) {
                bad(key, "a number", v);
              }
            } else {
              bad(key, "a number", v);
            }
            if (!(d >= min && d <= max)) {
              throw config_error(key, "must be between " + json(min).dump() + " and " +
                                          json(max).dump() + ", got " + json(d).dump());
            }
            acc(c) = d;
          },
          [acc](const config& c) { return json(acc(c)); }};
}

// Structured keys (routes, integrations) take a JSON object; from the environment or a flag
// the value is JSON text.
json object_value(const std::string& key, const json& v, bool from_text) {
  if (from_text && v.is_string()) {
    json parsed = parse_json(v.get<std::string>(), default_json_max_depth, nullptr, true);
    if (parsed.is_discarded()) bad(key, "a JSON object", v);
    return parsed;
  }
  return v;
}

using header_list = std::vector<std::pair<std::string, std::string>>;

header_list to_headers(const std::string& key, const json& v) {
  if (!v.is_object()) bad(key, "an object of header names to string values", v);
  header_list out;
  for (const auto& [name, value] : v.items()) {
    if (!value.is_string()) bad(key + "." + name, "a string", value);
    if (name.empty() || name.find_first_of(" :\r\n") != std::string::npos) {
      throw config_error(key, "\"" + name + "\" is not a valid header name");
    }
    const std::string text = value.get<std::string>();
    if (text.find_first_of("\r\n") != std::string::npos) {
      throw config_error(key + "." + name, "header values cannot contain line breaks");
    }
    out.emplace_back(name, text);
  }
  return out;
}

json from_headers(const header_list& headers) {
  json out = json::object();
  for (const auto& [k, v] : headers)
    out[k] = v;
  return out;
}

void check_known_members(const std::string& key, const json& obj,
                         const std::vector<std::string>& known) {
  for (const auto& [name, value] : obj.items()) {
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::vector<std::string> full;
    for (const auto& k : known)
      full.push_back(key + "." + k);
    std::string message = "unknown key";
    const std::string hint = suggest_key(key + "." + name, full);
    if (!hint.empty()) message += "; did you mean '" + hint + "'?";
    throw config_error(key + "." + name, message);
  }
}

integration_config parse_integration(const std::string& key, const std::string& name,
                                     const json& v) {
  if (!v.is_object()) bad(key, "an object with a \"type\"", v);
  integration_config ic;
  ic.name = name;
  const auto type = v.find("type");
  if (type == v.end())
    throw config_error(key + ".type", "required (http | echo | mock | redis_stream)");
  const std::string t = type->is_string() ? type->get<std::string>() : "";
  if (t == "http") {
    ic.kind = integration_kind::http;
    check_known_members(key, v,
                        {"type", "url", "mode", "timeout", "connect_timeout", "keepalive_timeout",
                         "max_concurrency", "max_pending", "max_response_bytes", "headers",
                         "tls_verify", "ca_file"});
    const auto url = v.find("url");
    if (url == v.end()) throw config_error(key + ".url", "required for an http integration");
    ic.url = as_string(key + ".url", *url, "an http:// or https:// URL");
    if (!parse_url(ic.url)) {
      bad(key + ".url", "an http:// or https:// URL such as \"http://backend:9000/events\"", *url);
    }
    if (const auto m = v.find("mode"); m != v.end()) {
      const std::string mode = m->is_string() ? m->get<std::string>() : "";
      if (mode == "http") {
        ic.mode = response_mode::http;
      } else if (mode == "lambda-proxy") {
        ic.mode = response_mode::lambda_proxy;
      } else {
        bad(key + ".mode", "one of http | lambda-proxy", *m);
      }
    }
    const auto dur = [&](const char* member, duration& out, duration min, duration max) {
      if (const auto it = v.find(member); it != v.end()) {
        out = to_duration(key + "." + member, *it);
        if (out < min || out > max) {
          throw config_error(key + "." + member, "must be between " + format_duration(min) +
                                                     " and " + format_duration(max));
        }
      }
    };
    dur("timeout", ic.timeout, std::chrono::milliseconds(10), std::chrono::seconds(600));
    dur("connect_timeout", ic.connect_timeout, std::chrono::milliseconds(10),
        std::chrono::seconds(120));
    dur("keepalive_timeout", ic.keepalive_timeout, duration::zero(), std::chrono::seconds(3600));
    const auto count = [&](const char* member, std::size_t& out, std::uint64_t min,
                           std::uint64_t max) {
      if (const auto it = v.find(member); it != v.end()) {
        const auto n = to_count(key + "." + member, *it, false);
        check_range<std::uint64_t>(key + "." + member, n, min, max,
                                   std::to_string(min) + " and " + std::to_string(max));
        out = static_cast<std::size_t>(n);
      }
    };
    count("max_concurrency", ic.max_concurrency, 1, 100000);
    count("max_pending", ic.max_pending, 0, 1000000);
    if (const auto it = v.find("max_response_bytes"); it != v.end()) {
      ic.max_response_bytes = to_size(key + ".max_response_bytes", *it);
    }
    if (const auto it = v.find("headers"); it != v.end())
      ic.headers = to_headers(key + ".headers", *it);
    if (const auto it = v.find("tls_verify"); it != v.end())
      ic.tls_verify = to_bool(key + ".tls_verify", *it, false);
    if (const auto it = v.find("ca_file"); it != v.end())
      ic.ca_file = as_string(key + ".ca_file", *it, "a path");
  } else if (t == "echo") {
    ic.kind = integration_kind::echo;
    check_known_members(key, v, {"type"});
  } else if (t == "mock") {
    ic.kind = integration_kind::mock;
    check_known_members(key, v, {"type", "status", "body", "headers"});
    if (const auto it = v.find("status"); it != v.end()) {
      const auto n = to_count(key + ".status", *it, false);
      check_range<std::uint64_t>(key + ".status", n, 100, 599, "100 and 599");
      ic.status = static_cast<int>(n);
    }
    if (const auto it = v.find("body"); it != v.end()) {
      ic.body = it->is_string() ? it->get<std::string>() : it->dump();
    }
    if (const auto it = v.find("headers"); it != v.end())
      ic.response_headers = to_headers(key + ".headers", *it);
  } else if (t == "redis_stream") {
    ic.kind = integration_kind::redis_stream;
    check_known_members(key, v, {"type", "stream", "max_length"});
    if (const auto it = v.find("stream"); it != v.end()) {
      ic.stream = as_string(key + ".stream", *it, "a Redis key");
      if (ic.stream.empty()) throw config_error(key + ".stream", "must not be empty");
    }
    if (const auto it = v.find("max_length"); it != v.end()) {
      const auto n = to_count(key + ".max_length", *it, false);
      check_range<std::uint64_t>(key + ".max_length", n, 1, 1000000000, "1 and 1000000000");
      ic.max_length = static_cast<std::size_t>(n);
    }
  } else {
    bad(key + ".type", "one of http | echo | mock | redis_stream", *type);
  }
  return ic;
}

json dump_integration(const integration_config& ic) {
  switch (ic.kind) {
    case integration_kind::echo:
      return {{"type", "echo"}};
    case integration_kind::redis_stream: {
      json out = {{"type", "redis_stream"}, {"max_length", ic.max_length}};
      if (!ic.stream.empty()) out["stream"] = ic.stream;
      return out;
    }
    case integration_kind::mock:
      return {{"type", "mock"},
              {"status", ic.status},
              {"body", ic.body},
              {"headers", from_headers(ic.response_headers)}};
    case integration_kind::http: {
      json out = {{"type", "http"},
                  {"url", ic.url},
                  {"mode", ic.mode == response_mode::http ? "http" : "lambda-proxy"},
                  {"timeout", format_duration(ic.timeout)},
                  {"connect_timeout", format_duration(ic.connect_timeout)},
                  {"keepalive_timeout", format_duration(ic.keepalive_timeout)},
                  {"max_concurrency", ic.max_concurrency},
                  {"max_pending", ic.max_pending},
                  {"max_response_bytes", format_size(ic.max_response_bytes)},
                  {"headers", from_headers(ic.headers)},
                  {"tls_verify", ic.tls_verify}};
      if (!ic.ca_file.empty()) out["ca_file"] = ic.ca_file;
      return out;
    }
  }
  return nullptr;
}

option_def integrations_opt() {
  return {"integrations", "object",
          "Named backends routes can use: {\"name\": {\"type\": \"http\" | \"echo\" | \"mock\" | "
          "\"redis_stream\", ...}} "
          "(see docs/routing.md)",
          [](config& c, const json& raw, bool text) {
            const json v = object_value("integrations", raw, text);
            if (!v.is_object()) bad("integrations", "an object of named integrations", raw);
            c.integrations.clear();
            for (const auto& [name, spec] : v.items()) {
              if (name.empty())
                throw config_error("integrations", "integration names cannot be empty");
              c.integrations.push_back(parse_integration("integrations." + name, name, spec));
            }
          },
          [](const config& c) {
            json out = json::object();
            for (const auto& ic : c.integrations)
              out[ic.name] = dump_integration(ic);
            return out;
          }};
}

const std::vector<std::pair<std::string, channel_access>> kAccessNames{
    {"open", channel_access::open},
    {"claim", channel_access::claim},
    {"integration", channel_access::integration},
    {"deny", channel_access::deny}};

std::string access_name(channel_access a) {
  for (const auto& [name, value] : kAccessNames) {
    if (value == a) return name;
  }
  return "open";
}

channel_access to_access(const std::string& key, const json& v) {
  if (v.is_string()) {
    for (const auto& [name, value] : kAccessNames) {
      if (name == v.get<std::string>()) return value;
    }
  }
  bad(key, "one of open | claim | integration | deny", v);
}

option_def channel_rules_opt() {
  return {"channels.rules", "array",
          "Channel access rules, first match wins: [{\"pattern\": \"news.*\", \"access\": "
          "\"open\" | \"claim\" | \"integration\" | \"deny\", \"claim\", \"integration\", "
          "\"publish\"}] (see docs/redis.md)",
          [](config& c, const json& raw, bool text) {
            const json v = object_value("channels.rules", raw, text);
            if (!v.is_array()) bad("channels.rules", "an array of rules", raw);
            c.channels.rules.clear();
            for (std::size_t i = 0; i < v.size(); ++i) {
              const std::string key = "channels.rules[" + std::to_string(i) + "]";
              const json& r = v[i];
              if (!r.is_object()) bad(key, "an object with a \"pattern\"", r);
              check_known_members(key, r, {"pattern", "access", "claim", "integration", "publish"});
              channel_rule rule;
              const auto p = r.find("pattern");
              if (p == r.end()) throw config_error(key + ".pattern", "required");
              rule.pattern = as_string(key + ".pattern", *p, "a glob such as \"news.*\"");
              if (rule.pattern.empty()) throw config_error(key + ".pattern", "must not be empty");
              if (const auto a = r.find("access"); a != r.end())
                rule.access = to_access(key + ".access", *a);
              if (const auto cl = r.find("claim"); cl != r.end())
                rule.claim = as_string(key + ".claim", *cl, "a key");
              if (const auto in = r.find("integration"); in != r.end()) {
                rule.integration = as_string(key + ".integration", *in, "an integration name");
              }
              if (rule.access == channel_access::integration && rule.integration.empty()) {
                throw config_error(key + ".integration", "required when access is integration");
              }
              if (const auto pub = r.find("publish"); pub != r.end())
                rule.publish = to_bool(key + ".publish", *pub, false);
              c.channels.rules.push_back(std::move(rule));
            }
          },
          [](const config& c) {
            json out = json::array();
            for (const auto& r : c.channels.rules) {
              json j = {{"pattern", r.pattern},
                        {"access", access_name(r.access)},
                        {"publish", r.publish}};
              if (r.access == channel_access::claim) j["claim"] = r.claim;
              if (r.access == channel_access::integration) j["integration"] = r.integration;
              out.push_back(std::move(j));
            }
            return out;
          }};
}

// A glob that must match whole channel names (`*` and `?`; no `{user}` here).
std::string glob_pattern(const std::string& key, const json& r) {
  const auto p = r.find("pattern");
  if (p == r.end()) throw config_error(key + ".pattern", "required");
  std::string pattern = as_string(key + ".pattern", *p, "a glob such as \"news.*\"");
  if (pattern.empty()) throw config_error(key + ".pattern", "must not be empty");
  return pattern;
}

option_def history_rules_opt() {
  return {"history.rules", "array",
          "Channels that keep history, first match wins: [{\"pattern\": \"orders.*\", "
          "\"size\": 1000, \"ttl\": \"24h\"}] (see docs/durability.md)",
          [](config& c, const json& raw, bool text) {
            const json v = object_value("history.rules", raw, text);
            if (!v.is_array()) bad("history.rules", "an array of rules", raw);
            c.history.rules.clear();
            for (std::size_t i = 0; i < v.size(); ++i) {
              const std::string key = "history.rules[" + std::to_string(i) + "]";
              const json& r = v[i];
              if (!r.is_object()) bad(key, "an object with a \"pattern\"", r);
              check_known_members(key, r, {"pattern", "size", "ttl"});
              history_rule rule;
              rule.pattern = glob_pattern(key, r);
              if (const auto s = r.find("size"); s != r.end()) {
                const auto n = to_count(key + ".size", *s, false);
                check_range<std::uint64_t>(key + ".size", n, 1, 10000000, "1 and 10000000");
                rule.size = static_cast<std::size_t>(n);
              }
              if (const auto t = r.find("ttl"); t != r.end()) {
                rule.ttl = to_duration(key + ".ttl", *t);
                if (rule.ttl < std::chrono::seconds(1) || rule.ttl > std::chrono::hours(24 * 365))
                  throw config_error(key + ".ttl", "must be between 1s and 365d");
              }
              c.history.rules.push_back(std::move(rule));
            }
          },
          [](const config& c) {
            json out = json::array();
            for (const auto& r : c.history.rules)
              out.push_back(
                  {{"pattern", r.pattern}, {"size", r.size}, {"ttl", format_duration(r.ttl)}});
            return out;
          }};
}

option_def presence_rules_opt() {
  return {"presence.rules", "array",
          "Channels whose subscribers are tracked across nodes: [{\"pattern\": \"room.*\", "
          "\"events\": true}] (events: subscribers hear joins and leaves)",
          [](config& c, const json& raw, bool text) {
            const json v = object_value("presence.rules", raw, text);
            if (!v.is_array()) bad("presence.rules", "an array of rules", raw);
            c.presence.rules.clear();
            for (std::size_t i = 0; i < v.size(); ++i) {
              const std::string key = "presence.rules[" + std::to_string(i) + "]";
              const json& r = v[i];
              if (!r.is_object()) bad(key, "an object with a \"pattern\"", r);
              check_known_members(key, r, {"pattern", "events"});
              presence_rule rule;
              rule.pattern = glob_pattern(key, r);
              if (const auto e = r.find("events"); e != r.end())
                rule.events = to_bool(key + ".events", *e, false);
              c.presence.rules.push_back(std::move(rule));
            }
          },
          [](const config& c) {
            json out = json::array();
            for (const auto& r : c.presence.rules)
              out.push_back({{"pattern", r.pattern}, {"events", r.events}});
            return out;
          }};
}

option_def routes_opt() {
  return {"routes", "object",
          "Route table: {\"$connect\" | \"$disconnect\" | \"$default\" | \"<custom>\": "
          "{\"integration\": name, \"response\": bool}}",
          [](config& c, const json& raw, bool text) {
            const json v = object_value("routes", raw, text);
            if (!v.is_object()) bad("routes", "an object of route keys to routes", raw);
            c.routes.clear();
            for (const auto& [route_key, spec] : v.items()) {
              const std::string key = "routes." + route_key;
              if (route_key.empty()) throw config_error("routes", "route keys cannot be empty");
              if (route_key.front() == '$' && route_key != "$connect" &&
                  route_key != "$disconnect" && route_key != "$default") {
                throw config_error(key,
                                   "custom route keys must not start with '$' (only $connect, "
                                   "$disconnect and $default are predefined)");
              }
              if (!spec.is_object())
                bad(key, "an object such as {\"integration\": \"backend\"}", spec);
              check_known_members(key, spec, {"integration", "response"});
              route_config rc;
              rc.key = route_key;
              const auto it = spec.find("integration");
              if (it == spec.end()) throw config_error(key + ".integration", "required");
              rc.integration = as_string(key + ".integration", *it, "an integration name");
              if (const auto r = spec.find("response"); r != spec.end()) {
                rc.response = to_bool(key + ".response", *r, false);
              }
              if (rc.response && route_key == "$disconnect") {
                throw config_error(key + ".response",
                                   "$disconnect cannot respond: the socket is closed");
              }
              c.routes.push_back(std::move(rc));
            }
          },
          [](const config& c) {
            json out = json::object();
            for (const auto& r : c.routes)
              out[r.key] = {{"integration", r.integration}, {"response", r.response}};
            return out;
          }};
}

option_def jwt_keys_opt() {
  return {"auth.jwt.keys", "array",
          "JWT verification keys, all accepted (rotation): [{\"kid\", \"alg\": \"HS256\" | "
          "\"HS384\" | \"HS512\" | \"RS256\" | \"RS384\" | \"RS512\" | \"ES256\" | \"ES384\", "
          "\"secret\" | \"secret_file\" | \"secret_env\" | \"public_key_file\"}] (see "
          "docs/security.md)",
          [](config& c, const json& raw, bool text) {
            const json v = object_value("auth.jwt.keys", raw, text);
            if (!v.is_array()) bad("auth.jwt.keys", "an array of keys", raw);
            c.auth.jwt.keys.clear();
            for (std::size_t i = 0; i < v.size(); ++i) {
              const std::string key = "auth.jwt.keys[" + std::to_string(i) + "]";
              const json& k = v[i];
              if (!k.is_object()) bad(key, "an object with an \"alg\"", k);
              check_known_members(
                  key, k, {"kid", "alg", "secret", "secret_file", "secret_env", "public_key_file"});
              jwt_key_config kc;
              const auto field = [&](const char* name, std::string& out) {
                if (const auto it = k.find(name); it != k.end())
                  out = as_string(key + "." + name, *it, "a string");
              };
              field("kid", kc.kid);
              field("alg", kc.alg);
              field("secret", kc.secret);
              field("secret_file", kc.secret_file);
              field("secret_env", kc.secret_env);
              field("public_key_file", kc.public_key_file);
              if (kc.alg.empty()) throw config_error(key + ".alg", "required");
              c.auth.jwt.keys.push_back(std::move(kc));
            }
          },
          [](const config& c) {
            json out = json::array();
            for (const auto& k : c.auth.jwt.keys) {
              json j = {{"alg", k.alg}};
              if (!k.kid.empty()) j["kid"] = k.kid;
              if (!k.secret.empty()) j["secret"] = k.secret;  // redacted by --print-config
              if (!k.secret_file.empty()) j["secret_file"] = k.secret_file;
              if (!k.secret_env.empty()) j["secret_env"] = k.secret_env;
              if (!k.public_key_file.empty()) j["public_key_file"] = k.public_key_file;
              out.push_back(std::move(j));
            }
            return out;
          }};
}

option_def secret(option_def o) {
  o.secret = true;
  return o;
}

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
                           {"warning", log_level::warn},  // as the logs spell it
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
          "tls.ciphers",
          "OpenSSL cipher list for TLS 1.2; the default is Mozilla's intermediate list (forward "
          "secrecy, AEAD only); empty = OpenSSL's default, which includes AES-CBC without "
          "forward secrecy",
          [](auto& c) -> auto& { return c.tls.ciphers; }),
      string_opt(
          "tls.ciphersuites", "OpenSSL TLS 1.3 cipher suites; empty = OpenSSL's default",
          [](auto& c) -> auto& { return c.tls.ciphersuites; }),
      duration_opt(
          "tls.handshake_timeout", "Time allowed for the TLS handshake",
          [](auto& c) -> auto& { return c.tls.handshake_timeout; }, milliseconds(10), seconds(120)),
      bool_opt(
          "tls.session_tickets",
          "Resume TLS sessions with tickets (stateless: the node keeps nothing per session; a "
          "resumed handshake skips the certificate signature); off: a per-node session cache",
          [](auto& c) -> auto& { return c.tls.session_tickets; }),
      string_opt(
          "tls.ticket_key_file",
          "File of 80 random bytes (openssl rand 80 > ticket.key) that encrypt session tickets, "
          "the same on every node behind one load balancer so clients resume on any node; "
          "re-read on SIGHUP (rotate it there); empty: a random key per process",
          [](auto& c) -> auto& { return c.tls.ticket_key_file; }),

      bool_opt(
          "admin.enabled", "Serve the admin listener (health, readiness)",
          [](auto& c) -> auto& { return c.admin.enabled; }),
      endpoint_opt(
          "admin.listen", "Admin listener; keep it on a private interface",
          [](auto& c) -> auto& { return c.admin.listen; }),
      secret(list_opt(
          "admin.api_keys",
          "API keys for the admin API (Authorization: Bearer KEY or x-api-key: KEY), at "
          "least 16 characters each; several at once for rotation",
          [](auto& c) -> auto& { return c.admin.api_keys; })),
      string_opt(
          "admin.sigv4.access_key_id",
          "Access key id AWS SDKs sign admin requests with (SigV4, service execute-api); empty: "
          "off",
          [](auto& c) -> auto& { return c.admin.sigv4.access_key_id; }),
      secret(string_opt(
          "admin.sigv4.secret_access_key", "The secret of admin.sigv4.access_key_id",
          [](auto& c) -> auto& { return c.admin.sigv4.secret_access_key; })),
      string_opt(
          "admin.sigv4.region", "Region signatures must name; empty: any",
          [](auto& c) -> auto& { return c.admin.sigv4.region; }),
      duration_opt(
          "admin.sigv4.max_skew",
          "How far a signed request's time may be from ours (replays older than this fail)",
          [](auto& c) -> auto& { return c.admin.sigv4.max_skew; }, std::chrono::seconds(1),
          std::chrono::hours(1)),
      bool_opt(
          "admin.allow_unauthenticated",
          "Serve the admin API without keys on a non-loopback address (private networks only)",
          [](auto& c) -> auto& { return c.admin.allow_unauthenticated; }),
      count_opt(
          "admin.max_batch", "Publications accepted in one /v1/publish request",
          [](auto& c) -> auto& { return c.admin.max_batch; }, 1, 10000),
      bool_opt(
          "admin.client_listener_connections",
          "Also serve @connections (with and without a stage prefix) on the client listener, as "
          "API Gateway does on the API's host, for handlers that call back "
          "https://{domainName}/{stage}; SigV4 only (needs admin.sigv4); nothing else of the "
          "admin API is served there",
          [](auto& c) -> auto& { return c.admin.client_listener_connections; }),

      list_opt(
          "http.trusted_proxies",
          "Proxies (CIDR, e.g. 10.0.0.0/8) whose X-Forwarded-For names the client address; "
          "empty: the TCP peer is the client",
          [](auto& c) -> auto& { return c.http.trusted_proxies; }),
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
      string_opt(
          "http.static_dir",
          "Directory whose files the client listener serves over GET/HEAD (index.html for /, "
          "also on the WebSocket path when the request is not an upgrade); empty: off",
          [](auto& c) -> auto& { return c.http.static_dir; }),
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
      string_opt(
          "websocket.heartbeat_action",
          "Route key Herald answers itself with {\"type\":\"heartbeat\",\"id\":...} (client "
          "SDKs use it to detect dead connections, which browsers cannot ping); empty: off",
          [](auto& c) -> auto& { return c.websocket.heartbeat_action; }),
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

      number_opt(
          "websocket.rate_limit.messages_per_second",
          "Messages a connection may send per second on average (token bucket); 0 disables",
          [](auto& c) -> auto& { return c.websocket.rate_limit.messages_per_second; }, 0, 1e6),
      number_opt(
          "websocket.rate_limit.burst", "Messages a connection may send at once above the rate",
          [](auto& c) -> auto& { return c.websocket.rate_limit.burst; }, 1, 1e6),
      count_opt(
          "websocket.rate_limit.max_violations",
          "Throttled messages after which the connection is closed (1008); 0: never close",
          [](auto& c) -> auto& { return c.websocket.rate_limit.max_violations; }, 0, 1000000000),
      bool_opt(
          "sse.enabled",
          "Serve the Server-Sent Events fallback (GET sse.path streams, POST sse.path sends) for "
          "networks that block WebSockets; the JavaScript SDK falls back to it by itself",
          [](auto& c) -> auto& { return c.sse.enabled; }),
      string_opt(
          "sse.path", "Request path of the Server-Sent Events fallback",
          [](auto& c) -> auto& { return c.sse.path; }),
      duration_opt(
          "sse.keepalive_interval",
          "A comment line on an SSE stream that has been quiet this long, so that proxies do not "
          "time it out",
          [](auto& c) -> auto& { return c.sse.keepalive_interval; }, milliseconds(100),
          seconds(3600)),
      bool_opt(
          "websocket.compression.enabled",
          "Agree to permessage-deflate when a client offers it (browsers do): each message is "
          "compressed once for all its recipients, client messages are inflated within "
          "websocket.max_message_bytes",
          [](auto& c) -> auto& { return c.websocket.compression.enabled; }),
      size_opt(
          "websocket.compression.min_bytes",
          "Messages smaller than this go uncompressed, even on a compressed connection",
          [](auto& c) -> auto& { return c.websocket.compression.min_bytes; }, 0, 64 * MiB),
      count_opt(
          "websocket.compression.level", "zlib compression level: 1 (fastest) to 9 (smallest)",
          [](auto& c) -> auto& { return c.websocket.compression.level; }, 1, 9),
      count_opt(
          "websocket.compression.server_max_window_bits",
          "Window (log2 bytes) of the messages Herald compresses, unless the client asks for a "
          "smaller one: 9 to 15; a smaller window costs the client less memory and compresses "
          "less",
          [](auto& c) -> auto& { return c.websocket.compression.server_max_window_bits; }, 9, 15),
      list_opt(
          "websocket.allowed_origins",
          "Origin globs allowed to open a WebSocket (e.g. https://*.example.com); others get 403. "
          "Empty: any origin. Requests without an Origin header (non-browser clients) pass",
          [](auto& c) -> auto& { return c.websocket.allowed_origins; }),
      number_opt(
          "websocket.per_ip.connect_rate",
          "New connections per second one client address may open (token bucket); over it: "
          "429. 0 disables. Set http.trusted_proxies behind a load balancer",
          [](auto& c) -> auto& { return c.websocket.per_ip.connect_rate; }, 0, 1e6),
      number_opt(
          "websocket.per_ip.connect_burst",
          "New connections one address may open at once above websocket.per_ip.connect_rate",
          [](auto& c) -> auto& { return c.websocket.per_ip.connect_burst; }, 1, 1e6),
      count_opt(
          "websocket.per_ip.max_connections",
          "Open connections one client address may hold; over it: 429. 0 disables",
          [](auto& c) -> auto& { return c.websocket.per_ip.max_connections; }, 0, 10000000),

      secret(jwt_keys_opt()),
      string_opt(
          "auth.jwt.jwks_file",
          "A JWKS document ({\"keys\": [...]}) with more verification keys; re-read on SIGHUP",
          [](auto& c) -> auto& { return c.auth.jwt.jwks_file; }),
      list_opt(
          "auth.jwt.token_sources",
          "Where the token is taken from, in order: header (Authorization: Bearer), query "
          "(auth.jwt.query_parameter), subprotocol (auth.jwt.subprotocol_prefix + token)",
          [](auto& c) -> auto& { return c.auth.jwt.token_sources; }),
      string_opt(
          "auth.jwt.query_parameter", "Query parameter carrying the token",
          [](auto& c) -> auto& { return c.auth.jwt.query_parameter; }),
      string_opt(
          "auth.jwt.subprotocol_prefix",
          "Sec-WebSocket-Protocol entries starting with this carry the token (never echoed back)",
          [](auto& c) -> auto& { return c.auth.jwt.subprotocol_prefix; }),
      bool_opt(
          "auth.jwt.required",
          "Refuse (401) upgrades without a token; false lets them in anonymous (a bad token is "
          "still refused)",
          [](auto& c) -> auto& { return c.auth.jwt.required; }),
      string_opt(
          "auth.jwt.issuer", "Required iss claim; empty: not checked",
          [](auto& c) -> auto& { return c.auth.jwt.issuer; }),
      list_opt(
          "auth.jwt.audience", "Accepted aud values (one must match); empty: not checked",
          [](auto& c) -> auto& { return c.auth.jwt.audience; }),
      duration_opt(
          "auth.jwt.leeway", "Clock skew allowed when checking exp, nbf and iat",
          [](auto& c) -> auto& { return c.auth.jwt.leeway; }, zero, std::chrono::minutes(10)),
      string_opt(
          "auth.jwt.user_claim", "The claim that names the connection's user",
          [](auto& c) -> auto& { return c.auth.jwt.user_claim; }),
      bool_opt(
          "auth.jwt.close_on_expiry",
          "Close connections (4001 \"token expired\") when their token's exp passes",
          [](auto& c) -> auto& { return c.auth.jwt.close_on_expiry; }),
      bool_opt(
          "auth.jwt.require_exp",
          "Refuse tokens without an exp claim (they would never expire); false accepts them",
          [](auto& c) -> auto& { return c.auth.jwt.require_exp; }),
      string_opt(
          "auth.authorizer.integration",
          "An http integration called with an API Gateway REQUEST authorizer event before "
          "$connect; empty: no authorizer",
          [](auto& c) -> auto& { return c.auth.authorizer.integration; }),
      list_opt(
          "auth.authorizer.identity_sources",
          "route.request.header.<Name> or route.request.querystring.<name>; when one is "
          "missing the upgrade gets 401 without calling the authorizer",
          [](auto& c) -> auto& { return c.auth.authorizer.identity_sources; }),
      duration_opt(
          "auth.authorizer.cache_ttl",
          "How long an authorizer's answer is reused for the same identity; 0 disables",
          [](auto& c) -> auto& { return c.auth.authorizer.cache_ttl; }, zero, kDay),
      count_opt(
          "auth.authorizer.cache_size", "Identities whose authorizer answer is cached (per node)",
          [](auto& c) -> auto& { return c.auth.authorizer.cache_size; }, 1, 10000000),

      string_opt(
          "routing.selection_expression",
          "Route selection expression, e.g. $request.body.action or "
          "${request.body.service}/${request.body.action}",
          [](auto& c) -> auto& { return c.routing.selection_expression; }),
      string_opt(
          "routing.api_id", "requestContext.apiId in events",
          [](auto& c) -> auto& { return c.routing.api_id; }),
      string_opt(
          "routing.stage", "requestContext.stage in events",
          [](auto& c) -> auto& { return c.routing.stage; }),
      string_opt(
          "routing.domain_name",
          "requestContext.domainName in events; empty: the Host header of the upgrade",
          [](auto& c) -> auto& { return c.routing.domain_name; }),
      count_opt(
          "routing.max_inflight_per_connection",
          "Messages of one connection being handled by integrations at once; at the limit "
          "Herald stops reading that socket until one finishes",
          [](auto& c) -> auto& { return c.routing.max_inflight_per_connection; }, 1, 100000),
      routes_opt(),
      integrations_opt(),

      count_opt(
          "channels.max_name_length", "Longest channel name (bytes)",
          [](auto& c) -> auto& { return c.channels.max_name_length; }, 1, 1024),
      count_opt(
          "channels.max_per_connection", "Channels one connection may subscribe to",
          [](auto& c) -> auto& { return c.channels.max_per_connection; }, 0, 100000),
      string_opt(
          "channels.subscribe_action",
          "Route key of the built-in subscribe action "
          "({\"action\":\"subscribe\",\"channel\":...}); "
          "empty turns it off",
          [](auto& c) -> auto& { return c.channels.subscribe_action; }),
      string_opt(
          "channels.unsubscribe_action",
          "Route key of the built-in unsubscribe action; empty turns it off",
          [](auto& c) -> auto& { return c.channels.unsubscribe_action; }),
      string_opt(
          "channels.publish_action",
          "Route key of the built-in client publish action "
          "({\"action\":\"publish\",\"channel\":..., "
          "\"data\":...}); empty (the default) turns it off. Rules decide which channels allow it",
          [](auto& c) -> auto& { return c.channels.publish_action; }),
      channel_rules_opt(),
      enum_opt<channel_access>("channels.default_access",
                               "Access to channels no rule matches: open or deny",
                               [](auto& c) -> auto& { return c.channels.default_access; },
                               {{"open", channel_access::open}, {"deny", channel_access::deny}}),

      history_rules_opt(),
      count_opt(
          "history.max_recovery",
          "Publications replayed to one subscriber resuming from an offset; a longer gap is "
          "answered with recovered:false (at most websocket.send_queue.max_messages)",
          [](auto& c) -> auto& { return c.history.max_recovery; }, 1, 1000000),
      count_opt(
          "history.max_page", "Most publications one GET /v1/channels/{name}/history returns",
          [](auto& c) -> auto& { return c.history.max_page; }, 1, 1000000),
      duration_opt(
          "history.idempotency_ttl",
          "How long an idempotency key is remembered (a retry with the same key is stored once)",
          [](auto& c) -> auto& { return c.history.idempotency_ttl; }, seconds(1), kDay),
      bool_opt(
          "inbox.enabled",
          "Per-user offline inbox: publications to a user with \"store\": true are kept until "
          "acknowledged and delivered to the user's connections subscribed to \"$inbox\"",
          [](auto& c) -> auto& { return c.inbox.enabled; }),
      count_opt(
          "inbox.size", "Newest inbox messages kept per user",
          [](auto& c) -> auto& { return c.inbox.rule.size; }, 1, 10000000),
      duration_opt(
          "inbox.ttl", "Inbox messages older than this are dropped",
          [](auto& c) -> auto& { return c.inbox.rule.ttl; }, seconds(1), kDay * 365),
      string_opt(
          "inbox.ack_action",
          "Route key of the inbox acknowledgement ({\"action\":\"ack\",\"channel\":\"$inbox\","
          "\"offset\":N}); empty turns it off",
          [](auto& c) -> auto& { return c.inbox.ack_action; }),
      presence_rules_opt(),
      string_opt(
          "presence.action",
          "Route key of the presence query ({\"action\":\"presence\",\"channel\":...}); empty "
          "turns it off",
          [](auto& c) -> auto& { return c.presence.action; }),
      count_opt(
          "presence.max_members", "Most entries one presence query returns",
          [](auto& c) -> auto& { return c.presence.max_members; }, 1, 1000000),

      enum_opt<backplane_kind>(
          "backplane",
          "local: one node, no Redis; redis: nodes share publications, "
          "subscriptions and the connection directory through Redis",
          [](auto& c) -> auto& { return c.backplane; },
          {{"local", backplane_kind::local}, {"redis", backplane_kind::redis}}),
      secret(string_opt(
          "redis.url",
          "redis://[[user]:password@]host[:port][/db], rediss://... (TLS) or unix:///path[?db=N]",
          [](auto& c) -> auto& { return c.redis.url; })),
      string_opt(
          "redis.key_prefix",
          "Prefix of Herald's Redis channels and keys (<prefix>:channel:{name}, ...)",
          [](auto& c) -> auto& { return c.redis.key_prefix; }),
      duration_opt(
          "redis.connect_timeout", "Time allowed to connect (and authenticate) to Redis",
          [](auto& c) -> auto& { return c.redis.connect_timeout; }, milliseconds(10), seconds(60)),
      duration_opt(
          "redis.command_timeout",
          "Time allowed for a Redis reply before the connection is dropped",
          [](auto& c) -> auto& { return c.redis.command_timeout; }, milliseconds(10), seconds(60)),
      duration_opt(
          "redis.reconnect_max_backoff",
          "Longest wait between reconnection attempts (exponential backoff with full jitter)",
          [](auto& c) -> auto& { return c.redis.reconnect_max_backoff; }, milliseconds(10),
          seconds(600)),
      duration_opt(
          "redis.probe_interval",
          "How often the node publishes a probe to itself to check pub/sub delivery",
          [](auto& c) -> auto& { return c.redis.probe_interval; }, milliseconds(10), seconds(600)),
      duration_opt(
          "redis.probe_timeout",
          "A probe not back within this marks pub/sub stalled: not ready, subscriber reconnected",
          [](auto& c) -> auto& { return c.redis.probe_timeout; }, milliseconds(10), seconds(600)),
      duration_opt(
          "redis.directory_ttl",
          "Lifetime of a connection's directory entry, refreshed by its node",
          [](auto& c) -> auto& { return c.redis.directory_ttl; }, seconds(1), kDay),
      duration_opt(
          "redis.node_ttl",
          "Lifetime of a node's liveness key, refreshed by the node; a node silent this long is "
          "dead",
          [](auto& c) -> auto& { return c.redis.node_ttl; }, seconds(1), kDay),
      duration_opt(
          "redis.remote_timeout",
          "Time allowed for another node to answer (sends to its connections)",
          [](auto& c) -> auto& { return c.redis.remote_timeout; }, milliseconds(10), seconds(60)),
      bool_opt(
          "redis.required_for_readiness",
          "Report not ready (503 on /readyz) while the Redis backplane is down",
          [](auto& c) -> auto& { return c.redis.required_for_readiness; }),
      count_opt(
          "redis.max_pending_commands",
          "Unanswered commands per Redis connection at most; more are refused and counted "
          "(herald_backplane_commands_refused_total)",
          [](auto& c) -> auto& { return c.redis.max_pending_commands; }, 16, 10000000),
      count_opt(
          "redis.max_held_publications",
          "Publications of one history channel held in order while the gap before them is read "
          "back from Redis; past it they are handed over and the gap counted lost "
          "(herald_history_overflows_total)",
          [](auto& c) -> auto& { return c.redis.max_held_publications; }, 100, 10000000),
      list_opt(
          "redis.cluster.addresses",
          "Nodes (host:port) of a Redis Cluster to read its topology from (a few suffice); "
          "redis.url then gives only its password and scheme",
          [](auto& c) -> auto& { return c.redis.cluster.addresses; }),
      list_opt(
          "redis.sentinel.addresses",
          "Sentinels (host:port) that name the primary; redis.url then gives only its "
          "password, database and scheme",
          [](auto& c) -> auto& { return c.redis.sentinel.addresses; }),
      string_opt(
          "redis.sentinel.master_name", "The name the Sentinels monitor the primary under",
          [](auto& c) -> auto& { return c.redis.sentinel.master_name; }),
      string_opt(
          "redis.sentinel.username", "The Sentinels' own user (ACL), if they require one",
          [](auto& c) -> auto& { return c.redis.sentinel.username; }),
      secret(string_opt(
          "redis.sentinel.password", "The Sentinels' own password, if they require one",
          [](auto& c) -> auto& { return c.redis.sentinel.password; })),
      duration_opt(
          "redis.sentinel.timeout", "Time allowed to connect to one Sentinel and hear its answer",
          [](auto& c) -> auto& { return c.redis.sentinel.timeout; }, milliseconds(10), seconds(60)),
      bool_opt(
          "redis.tls.enabled",
          "TLS to Redis (also on with a rediss:// URL); never falls back to plain text",
          [](auto& c) -> auto& { return c.redis.tls.enabled; }),
      string_opt(
          "redis.tls.ca_file",
          "PEM CA certificates that sign Redis's certificate (empty: the system's trust store)",
          [](auto& c) -> auto& { return c.redis.tls.ca_file; }),
      string_opt(
          "redis.tls.cert_file", "PEM client certificate chain, for Redis with tls-auth-clients",
          [](auto& c) -> auto& { return c.redis.tls.cert_file; }),
      string_opt(
          "redis.tls.key_file", "PEM private key of redis.tls.cert_file",
          [](auto& c) -> auto& { return c.redis.tls.key_file; }),
      string_opt(
          "redis.tls.server_name",
          "Name checked in Redis's certificate and sent as SNI (empty: the host of redis.url)",
          [](auto& c) -> auto& { return c.redis.tls.server_name; }),
      bool_opt(
          "redis.tls.verify",
          "Verify Redis's certificate and name (turn off only to test; logged at start-up)",
          [](auto& c) -> auto& { return c.redis.tls.verify; }),

      duration_opt(
          "shutdown.accept_delay",
          "On SIGTERM/SIGINT, time /readyz reports 503 while the node still accepts connections, "
          "so the load balancer stops sending new ones before the listener closes",
          [](auto& c) -> auto& { return c.shutdown.accept_delay; }, zero, seconds(3600)),
      duration_opt(
          "shutdown.close_window",
          "Window over which open connections are closed (1001) at random moments, so their "
          "clients do not all reconnect at once",
          [](auto& c) -> auto& { return c.shutdown.close_window; }, zero, seconds(3600)),
      duration_opt(
          "shutdown.drain_timeout",
          "On SIGTERM/SIGINT, total time (from the signal) allowed for the drain before exit; "
          "keep it below the orchestrator's grace period",
          [](auto& c) -> auto& { return c.shutdown.drain_timeout; }, zero, seconds(3600)),

      count_opt(
          "limits.json_max_depth",
          "Deepest nesting of arrays and objects accepted in JSON from outside (client messages, "
          "admin API bodies, backend and authorizer answers, tokens, Redis payloads); deeper is "
          "refused as a bad request, never parsed further",
          [](auto& c) -> auto& { return c.limits.json_max_depth; }, 2, max_json_max_depth),
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
