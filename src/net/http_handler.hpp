// Plain HTTP requests (everything that is not a WebSocket upgrade): the handler interface,
// response helpers with Herald's JSON error shape, and the built-in health endpoints.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>

#include "net/net.hpp"
#include "net/server_context.hpp"

namespace herald::net {

namespace http = boost::beast::http;
using http_request = http::request<http::string_body>;
using http_response = http::response<http::string_body>;
using http_responder = std::function<void(http_response&&)>;

// What a handler knows about the request besides the request itself.
struct request_context {
  std::string remote_ip;
  listener_role role = listener_role::client;
  bool tls = false;
  unsigned worker = 0;  // the worker thread the request arrived on
};

// Answers plain HTTP requests on a listener (health, admin API, static files).
class http_handler {
 public:
  virtual ~http_handler() = default;
  // Handles one request. Calls `respond` exactly once, from any thread. Version and
  // keep-alive of the response are set by the caller.
  virtual void handle(http_request&& req, const request_context& rc, http_responder respond) = 0;
};

// A JSON response.
http_response json_response(http::status status, std::string body);
// Herald's error shape: {"error": "<code>", "message": "<text>"}.
http_response json_error(http::status status, std::string_view code, std::string_view message);

// The request path without the query string.
std::string_view request_path(std::string_view target);

// Why the node is not ready (empty: ready): "starting", "draining", the backplane's reason.
std::vector<std::string> readiness_reasons(const server_context& ctx);

// GET/HEAD /healthz and /readyz; everything else goes to `next` (or 404 without one).
class health_handler : public http_handler {
 public:
  health_handler(server_context& ctx, http_handler* next) : ctx_(ctx), next_(next) {}
  void handle(http_request&& req, const request_context& rc, http_responder respond) override;

 private:
  server_context& ctx_;
  http_handler* next_;
};

}  // namespace herald::net
