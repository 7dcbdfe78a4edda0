// The `http` integration: POSTs the API Gateway-shaped event to a backend URL and reads the
// answer as plain HTTP (`mode: http`) or as a Lambda proxy result (`mode: lambda-proxy`).
#pragma once

#include <memory>
#include <vector>

#include "herald/integrations/integration.hpp"
#include "net/net.hpp"

namespace herald::net {

// One keep-alive pool per worker; `workers[i]` is worker i's io_context. Answers are read by
// interpret_http_answer with JSON nested at most `max_json_depth` levels.
std::unique_ptr<integration> make_http_integration(const integration_config& cfg,
                                                   const std::vector<asio::io_context*>& workers,
                                                   std::size_t max_json_depth);

}  // namespace herald::net
