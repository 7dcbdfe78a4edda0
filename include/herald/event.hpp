// The JSON event an integration receives, shaped like API Gateway's WebSocket Lambda proxy
// event (requestContext with routeKey, eventType, connectionId, ...), so backends written for
// API Gateway run unchanged.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "herald/config.hpp"
#include "herald/connection.hpp"

namespace herald {

enum class event_type { connect, message, disconnect };

std::string_view to_string(event_type t);  // "CONNECT", "MESSAGE", "DISCONNECT"

// The upgrade request, as $connect sees it.
struct connect_request {
  std::string target;    // path and query, as sent
  string_pairs headers;  // as sent, in order, duplicates kept
};

struct event_input {
  event_type type = event_type::message;
  std::string_view route_key;
  std::string_view request_id;
  system_time_ms request_time = 0;
  const connection_info* conn = nullptr;
  const routing_config* routing = nullptr;
  // CONNECT
  const connect_request* request = nullptr;
  // MESSAGE
  std::string_view message_id;
  std::string_view body;
  bool body_base64 = false;
  // DISCONNECT
  std::uint16_t disconnect_code = 0;
  std::string_view disconnect_reason;
};

std::string build_event(const event_input& in);

// Common Log Format time as API Gateway writes requestTime: "16/Mar/2025:00:46:22 +0000".
std::string clf_time(system_time_ms t);

// Percent-decoding of one query-string component ('+' is a space). Invalid escapes stay as-is.
std::string url_decode(std::string_view s);

}  // namespace herald
