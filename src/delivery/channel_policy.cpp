#include "herald/delivery/channel_policy.hpp"

#include <nlohmann/json.hpp>

#include "herald/common/json_input.hpp"
#include "herald/common/text.hpp"

namespace herald {

bool glob_match(std::string_view pattern, std::string_view text) {
  // Iterative matcher with backtracking to the last '*': linear in practice, no recursion.
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*')
    ++p;
  return p == pattern.size();
}

namespace {

// "user.{user}" -> "user.alice"; a rule naming {user} never matches an anonymous connection.
bool expand(std::string_view pattern, const connection_info& who, std::string& out) {
  out.clear();
  constexpr std::string_view placeholder = "{user}";
  for (std::size_t i = 0; i < pattern.size();) {
    if (pattern.substr(i, placeholder.size()) == placeholder) {
      if (who.user_id().empty()) return false;
      out += who.user_id();
      i += placeholder.size();
    } else {
      out += pattern[i++];
    }
  }
  return true;
}

}  // namespace

std::vector<std::string> channel_policy::claimed_patterns(const connection_info& who,
                                                          std::string_view claim) {
  std::vector<std::string> out;
  if (!who.authorizer) return out;
  for (const auto& [k, v] : *who.authorizer) {
    if (k != claim) continue;
    const std::string_view value = trim(v);
    if (!value.empty() && value.front() == '[') {
      // A list of patterns: one level deep; anything deeper is no list at all.
      const auto arr = parse_json(value, 1);
      if (arr.is_array()) {
        for (const auto& item : arr) {
          if (item.is_string()) out.push_back(item.get<std::string>());
        }
      }
      continue;
    }
    std::string_view rest = value;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      const std::string_view item = trim(rest.substr(0, comma));
      if (!item.empty()) out.emplace_back(item);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return out;
}

const channel_rule* channel_policy::match(std::string_view channel,
                                          const connection_info& who) const {
  std::string expanded;
  for (const auto& rule : cfg_.rules) {
    if (expand(rule.pattern, who, expanded) && glob_match(expanded, channel)) return &rule;
  }
  return nullptr;
}

channel_policy::decision channel_policy::judge(const channel_rule* rule, std::string_view channel,
                                               const connection_info& who) const {
  const channel_access access = rule ? rule->access : cfg_.default_access;
  switch (access) {
    case channel_access::open:
      return {verdict::allow, rule};
    case channel_access::deny:
      return {verdict::deny, rule};
    case channel_access::integration:
      return {verdict::ask, rule};
    case channel_access::claim: {
      std::string expanded;
      for (const auto& p : claimed_patterns(who, rule->claim)) {
        if (expand(p, who, expanded) && glob_match(expanded, channel))
          return {verdict::allow, rule};
      }
      return {verdict::deny, rule};
    }
  }
  return {verdict::deny, rule};
}

channel_policy::decision channel_policy::subscribe(std::string_view channel,
                                                   const connection_info& who) const {
  return judge(match(channel, who), channel, who);
}

channel_policy::decision channel_policy::publish(std::string_view channel,
                                                 const connection_info& who) const {
  const channel_rule* rule = match(channel, who);
  if (!rule || !rule->publish) return {verdict::deny, rule};
  return judge(rule, channel, who);
}

std::optional<std::string> check_channel_name(std::string_view name, std::size_t max_length) {
  if (name.empty()) return "channel name is empty";
  if (name.size() > max_length)
    return "channel name is longer than " + std::to_string(max_length) + " bytes";
  static constexpr std::string_view extra = "._-:@/=+";
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    extra.find(c) != std::string_view::npos;
    if (!ok) return "channel names may contain only A-Z a-z 0-9 and . _ - : @ / = +";
  }
  return std::nullopt;
}

const history_rule* find_history_rule(const config& cfg, std::string_view channel) {
  if (is_inbox(channel)) return cfg.inbox.enabled ? &cfg.inbox.rule : nullptr;
  for (const auto& r : cfg.history.rules) {
    if (glob_match(r.pattern, channel)) return &r;
  }
  return nullptr;
}

const presence_rule* find_presence_rule(const config& cfg, std::string_view channel) {
  if (is_inbox(channel)) return nullptr;
  for (const auto& r : cfg.presence.rules) {
    if (glob_match(r.pattern, channel)) return &r;
  }
  return nullptr;
}

}  // namespace herald
