// Reading a backend's HTTP answer (plain, or a Lambda proxy result), socket-free so unit tests
// and the fuzzer drive it with any bytes a backend could send.
#include <nlohmann/json.hpp>

#include "herald/common/json_input.hpp"
#include "herald/common/text.hpp"
#include "herald/integrations/integration.hpp"
#include "herald/ws/handshake.hpp"

namespace herald {
namespace {

using nlohmann::json;

std::string as_text(const json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

}  // namespace

std::string_view find_header(const string_pairs& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return {};
}

integration_result interpret_http_answer(response_mode mode, int status, string_pairs headers,
                                         std::string body, std::size_t max_json_depth) {
  if (status >= 500) {
    return integration_result::failure("backend answered " + std::to_string(status));
  }
  integration_result r;
  if (mode == response_mode::lambda_proxy && status >= 200 && status < 300) {
    json_status parsed = json_status::ok;
    const json doc = parse_json(body, max_json_depth, &parsed);
    if (parsed == json_status::too_deep)
      return integration_result::failure("Lambda proxy response: " +
                                         describe(parsed, max_json_depth));
    if (doc.is_object() && doc.contains("statusCode")) {
      // {statusCode, headers?, multiValueHeaders?, body?, isBase64Encoded?}, as a Lambda returns.
      const json& sc = doc["statusCode"];
      if (!sc.is_number_integer() || sc.get<int>() < 100 || sc.get<int>() > 599) {
        return integration_result::failure("Lambda proxy response has an invalid statusCode");
      }
      r.status = sc.get<int>();
      if (const auto h = doc.find("headers"); h != doc.end() && h->is_object()) {
        for (const auto& [k, v] : h->items())
          r.headers.emplace_back(k, as_text(v));
      }
      if (const auto h = doc.find("multiValueHeaders"); h != doc.end() && h->is_object()) {
        for (const auto& [k, vs] : h->items()) {
          if (!vs.is_array()) continue;
          for (const auto& v : vs)
            r.headers.emplace_back(k, as_text(v));
        }
      }
      if (const auto b = doc.find("body"); b != doc.end() && !b->is_null()) {
        r.body = as_text(*b);
        r.has_body = true;
      }
      if (const auto p = doc.find("principalId"); p != doc.end() && p->is_string()) {
        r.principal_id = p->get<std::string>();
      }
      if (const auto c = doc.find("context"); c != doc.end() && c->is_object()) {
        // Values become strings, as API Gateway does with an authorizer's context.
        for (const auto& [k, v] : c->items())
          r.context.emplace_back(k, as_text(v));
      }
      if (const auto e = doc.find("isBase64Encoded");
          e != doc.end() && e->is_boolean() && e->get<bool>()) {
        auto decoded = ws::base64_decode(r.body);
        if (!decoded) return integration_result::failure("Lambda proxy body is not valid base64");
        r.body = std::move(*decoded);
        r.binary = true;
      }
      return r;
    }
    // Anything else is taken as the body itself (as API Gateway's v2 payload format does).
  }
  r.status = status;
  r.headers = std::move(headers);
  r.body = std::move(body);
  r.has_body = !r.body.empty();
  return r;
}

}  // namespace herald
