// The `http` integration: POSTs the API Gateway-shaped event to a backend URL and reads the
// answer as plain HTTP (`mode: http`) or as a Lambda proxy result (`mode: lambda-proxy`).
#pragma once

#include <memory>
#include <vector>

#include "herald/integration.hpp"
#include "net/net.hpp"

namespace herald::net {

// One keep-alive pool per worker; `workers[i]` is worker i's io_context.
std::unique_ptr<integration> make_http_integration(const integration_config& cfg,
                                                   const std::vector<asio::io_context*>& workers);

// How a backend's answer becomes an integration result (exposed for tests).
struct client_response;
integration_result interpret_response(response_mode mode, client_response&& res);

}  // namespace herald::net
