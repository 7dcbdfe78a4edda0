// The parts of authentication that read untrusted bytes (request headers, query strings, an
// authorizer's answer), socket-free so unit tests and the fuzzer drive them.
#include "herald/auth/authenticator.hpp"
#include "herald/common/json_input.hpp"
#include "herald/common/text.hpp"
#include "herald/delivery/channel_policy.hpp"
#include "herald/integrations/integration.hpp"

namespace herald {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxAuthorizerResult = 8 * 1024;  // as API Gateway

bool action_matches(const json& action) {
  const auto one = [](const json& a) {
    return a.is_string() && (a == "execute-api:Invoke" || a == "execute-api:*" || a == "*");
  };
  if (action.is_array()) {
    for (const auto& a : action) {
      if (one(a)) return true;
    }
    return false;
  }
  return one(action);
}

bool resource_matches(const json& resource, std::string_view arn) {
  const auto one = [arn](const json& r) {
    return r.is_string() && glob_match(r.get<std::string>(), arn);
  };
  if (resource.is_array()) {
    for (const auto& r : resource) {
      if (one(r)) return true;
    }
    return false;
  }
  return one(resource);
}

}  // namespace

std::optional<std::string> find_token(const jwt_config& cfg, const connect_request& request,
                                      std::vector<std::string>& offered) {
  // A token subprotocol never stays in the offer, whichever source wins.
  std::optional<std::string> from_protocol;
  for (auto it = offered.begin(); it != offered.end();) {
    if (!cfg.subprotocol_prefix.empty() && it->starts_with(cfg.subprotocol_prefix)) {
      if (!from_protocol) from_protocol = it->substr(cfg.subprotocol_prefix.size());
      it = offered.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& source : cfg.token_sources) {
    if (source == "header") {
      const std::string_view auth = trim(find_header(request.headers, "Authorization"));
      if (auth.size() > 7 && iequals(auth.substr(0, 7), "Bearer ")) {
        const std::string_view t = trim(auth.substr(7));
        if (!t.empty()) return std::string(t);
      }
    } else if (source == "query") {
      for (auto& [k, v] : query_pairs(request.target)) {
        if (k == cfg.query_parameter && !v.empty()) return std::move(v);
      }
    } else if (source == "subprotocol") {
      if (from_protocol && !from_protocol->empty()) return from_protocol;
    }
  }
  return std::nullopt;
}

string_pairs claims_context(const json& claims, std::string_view principal) {
  string_pairs out;
  out.emplace_back("principalId", std::string(principal));
  for (const auto& [k, v] : claims.items()) {
    if (k == "principalId") continue;
    out.emplace_back(k, v.is_string() ? v.get<std::string>()
                                      : v.dump(-1, ' ', false, json::error_handler_t::replace));
  }
  return out;
}

authorizer_answer parse_authorizer_answer(int status, std::string_view body,
                                          std::string_view method_arn, std::size_t max_json_depth) {
  using verdict = authorizer_answer::verdict;
  authorizer_answer a;
  if (status == 401) {
    a.what = verdict::unauthorized;
    return a;
  }
  if (status == 403) {
    a.what = verdict::deny;
    return a;
  }
  if (status < 200 || status >= 300) {
    a.error = "authorizer answered " + std::to_string(status);
    return a;
  }
  if (body.size() > kMaxAuthorizerResult) {
    a.error = "authorizer result over 8 KiB";
    return a;
  }
  json_status parsed = json_status::ok;
  const json doc = parse_json(body, max_json_depth, &parsed);
  if (parsed == json_status::too_deep) {
    a.error = "authorizer result: " + describe(parsed, max_json_depth);
    return a;
  }
  if (!doc.is_object()) {
    a.error = "authorizer result is not a JSON object";
    return a;
  }
  if (const auto p = doc.find("principalId"); p != doc.end()) {
    if (!p->is_string()) {
      a.error = "principalId is not a string";
      return a;
    }
    a.principal_id = p->get<std::string>();
  }
  if (const auto c = doc.find("context"); c != doc.end() && !c->is_null()) {
    if (!c->is_object()) {
      a.error = "context is not an object";
      return a;
    }
    for (const auto& [k, v] : c->items()) {
      if (v.is_string()) {
        a.context.emplace_back(k, v.get<std::string>());
      } else if (v.is_number() || v.is_boolean()) {
        a.context.emplace_back(k, v.dump());  // 1 -> "1", true -> "true", as API Gateway
      } else {
        a.error = "context values must be strings, numbers or booleans (\"" + k + "\")";
        return a;
      }
    }
  }
  const auto policy = doc.find("policyDocument");
  if (policy == doc.end() || !policy->is_object()) {
    a.error = "no policyDocument";
    return a;
  }
  const auto statements = policy->find("Statement");
  if (statements == policy->end() || !(statements->is_array() || statements->is_object())) {
    a.error = "policyDocument has no Statement";
    return a;
  }
  // An explicit Deny wins; otherwise an Allow that covers the method ARN; otherwise deny.
  bool allowed = false;
  bool denied = false;
  const auto consider = [&](const json& st) {
    if (!st.is_object()) return;
    const auto effect = st.find("Effect");
    const auto action = st.find("Action");
    const auto resource = st.find("Resource");
    if (effect == st.end() || action == st.end() || resource == st.end()) return;
    if (!action_matches(*action) || !resource_matches(*resource, method_arn)) return;
    if (*effect == "Allow") allowed = true;
    if (*effect == "Deny") denied = true;
  };
  if (statements->is_array()) {
    for (const auto& st : *statements)
      consider(st);
  } else {
    consider(*statements);
  }
  a.what = denied || !allowed ? verdict::deny : verdict::allow;
  return a;
}

}  // namespace herald
