#include "net/http_handler.hpp"

#include <nlohmann/json.hpp>

namespace herald::net {

http_response json_response(http::status status, std::string body) {
  http_response res{status, 11};
  res.set(http::field::content_type, "application/json");
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body);
  return res;
}

http_response json_error(http::status status, std::string_view code, std::string_view message) {
  nlohmann::json body = {{"error", code}, {"message", message}};
  return json_response(status, body.dump());
}

std::string_view request_path(std::string_view target) {
  const auto q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

std::vector<std::string> readiness_reasons(const server_context& ctx) {
  std::vector<std::string> reasons;
  if (!ctx.listening.load()) reasons.emplace_back("starting");
  if (ctx.draining.load()) reasons.emplace_back("draining");
  if (ctx.backplane_down) {
    if (auto why = ctx.backplane_down(); !why.empty()) reasons.push_back(std::move(why));
  }
  return reasons;
}

void health_handler::handle(http_request&& req, const request_context& rc, http_responder respond) {
  const std::string_view path = request_path(req.target());
  const bool read_only = req.method() == http::verb::get || req.method() == http::verb::head;
  if (path == "/healthz" || path == "/readyz") {
    if (!read_only) {
      auto res =
          json_error(http::status::method_not_allowed, "method_not_allowed", "use GET or HEAD");
      res.set(http::field::allow, "GET, HEAD");
      return respond(std::move(res));
    }
    if (path == "/healthz") return respond(json_response(http::status::ok, R"({"status":"ok"})"));
    const auto reasons = readiness_reasons(ctx_);
    if (reasons.empty()) return respond(json_response(http::status::ok, R"({"status":"ready"})"));
    nlohmann::json body = {{"status", "not_ready"}, {"reasons", reasons}};
    return respond(json_response(http::status::service_unavailable, body.dump()));
  }
  if (next_) return next_->handle(std::move(req), rc, std::move(respond));
  respond(json_error(http::status::not_found, "not_found", "no such endpoint"));
}

}  // namespace herald::net
