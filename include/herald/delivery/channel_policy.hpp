// The rules of channels: valid names, the inbox, which channels keep history or track presence,
// and who may subscribe (and, with channels.publish_action, publish): the first rule whose
// pattern matches decides between open, claim (the connection's authorizer context lists
// allowed patterns), integration (a backend decides) and deny. Socket-free.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "herald/config/config.hpp"
#include "herald/delivery/connection.hpp"

namespace herald {

// Glob match: `*` matches any run of characters (also none), `?` exactly one.
bool glob_match(std::string_view pattern, std::string_view text);

// Why a channel name is unacceptable, or nullopt when it is fine: 1..max_length bytes of
// A-Z a-z 0-9 and . _ - : @ / = + (no spaces, no control or non-ASCII bytes).
std::optional<std::string> check_channel_name(std::string_view name, std::size_t max_length);

// The user inbox is the channel "$inbox:<user>"; clients call it "$inbox".
inline constexpr std::string_view inbox_prefix = "$inbox:";
inline constexpr std::string_view inbox_name = "$inbox";
inline bool is_inbox(std::string_view channel) {
  return channel.starts_with(inbox_prefix);
}
// What clients see as the channel name ("$inbox" for any user's inbox).
inline std::string_view display_channel(std::string_view channel) {
  return is_inbox(channel) ? inbox_name : channel;
}

// The history settings of a channel (the inbox rule for "$inbox:*"), or null when it keeps none.
const history_rule* find_history_rule(const config& cfg, std::string_view channel);
// The presence settings of a channel, or null when its subscribers are not tracked.
const presence_rule* find_presence_rule(const config& cfg, std::string_view channel);

// Decides whether a connection may subscribe to or publish on a channel.
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
