// Who may subscribe (and, with channels.publish_action, publish) to which channels: the first
// rule whose pattern matches decides between open, claim (the connection's authorizer context
// lists allowed patterns), integration (a backend decides) and deny. Socket-free.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "herald/config.hpp"
#include "herald/connection.hpp"

namespace herald {

// Glob match: `*` matches any run of characters (also none), `?` exactly one.
bool glob_match(std::string_view pattern, std::string_view text);

class channel_policy {
 public:
  enum class verdict { allow, deny, ask };
  struct decision {
    verdict what = verdict::allow;
    const channel_rule* rule = nullptr;  // the rule that decided (null: the default)
  };

  explicit channel_policy(const channels_config& cfg) : cfg_(cfg) {}

  decision subscribe(std::string_view channel, const connection_info& who) const;
  // Publishing needs a matching rule with publish: true, and the same access as subscribing.
  decision publish(std::string_view channel, const connection_info& who) const;

  // The patterns an authorizer context grants under `claim`: a JSON array of strings or a
  // comma-separated list.
  static std::vector<std::string> claimed_patterns(const connection_info& who,
                                                   std::string_view claim);

 private:
  const channel_rule* match(std::string_view channel, const connection_info& who) const;
  decision judge(const channel_rule* rule, std::string_view channel,
                 const connection_info& who) const;

  const channels_config& cfg_;
};

}  // namespace herald
