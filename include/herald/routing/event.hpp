// The JSON event an integration receives, shaped like API Gateway's WebSocket Lambda proxy
// event (requestContext with routeKey, eventType, connectionId, ...), so backends written for
// API Gateway run unchanged.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "herald/config/config.hpp"
#include "herald/delivery/connection.hpp"

namespace herald {

// SUBSCRIBE and PUBLISH are Herald's own: a channel rule with access "integration" asks its
// integration whether a connection may subscribe (or publish) to a channel.
enum class event_type { connect, message, disconnect, subscribe, publish };

std::string_view to_string(event_type t);  // "CONNECT", "MESSAGE", "DISCONNECT", ...

// The upgrade request, as $connect sees it.
struct connect_request {
  std::string target;    // path and query, as sent
  string_pairs headers;  // as sent, in order, duplicates kept
};

// What API Gateway adds to the upgrade request's headers before $connect (and a REQUEST
// authorizer) sees them: X-Amzn-Trace-Id (a client's or proxy's own is kept), and
// X-Forwarded-For, -Port and -Proto naming the real client. Any X-Forwarded-* the client sent
// is replaced; behind a trusted proxy (http.trusted_proxies), its -Proto and -Port are kept.
struct forwarding {
  std::string_view client_ip;  // the connection's sourceIp
  bool from_trusted_proxy = false;
  bool tls = false;
  unsigned local_port = 0;    // the port the client connected to
  std::string_view trace_id;  // "Root=1-<8 hex>-<24 hex>" (make_trace_id)
};
void add_forwarding_headers(string_pairs& headers, const forwarding& f);

// An X-Amzn-Trace-Id value: "Root=1-" + the time in seconds (8 hex digits) + "-" + the 12
// random bytes (24 hex digits).
std::string make_trace_id(system_time_ms now, const unsigned char (&random)[12]);

// Everything an API Gateway event is built from.
struct event_input {
  event_type type = event_type::message;
  std::string_view route_key;
  std::string_view request_id;
  system_time_ms request_time = 0;
  const connection_info* conn = nullptr;
  const routing_config* routing = nullptr;
  // CONNECT
  const connect_request* request = nullptr;
  // A REQUEST authorizer's event: the CONNECT event plus "type" and "methodArn".
  std::string_view method_arn;
  // MESSAGE
  std::string_view message_id;
  std::string_view body;
  bool body_base64 = false;
  // DISCONNECT
  std::uint16_t disconnect_code = 0;
  std::string_view disconnect_reason;
  // SUBSCRIBE / PUBLISH: the channel (and, for PUBLISH, the data as JSON text in `body`)
  std::string_view channel;
};

std::string build_event(const event_input& in);

// Common Log Format time as API Gateway writes requestTime: "16/Mar/2025:00:46:22 +0000".
std::string clf_time(system_time_ms t);

// Percent-decoding of one query-string component ('+' is a space unless `plus_is_space` is
// false, as in paths). Invalid escapes stay as they are.
std::string url_decode(std::string_view s, bool plus_is_space = true);
// Percent-decoding where every '%' must start a valid escape ('+' stays '+'); nullopt if not.
std::optional<std::string> url_decode_strict(std::string_view s);

// The query string of a request target as decoded name/value pairs, in order.
string_pairs query_pairs(std::string_view target);

// ISO 8601 UTC with milliseconds: "2025-03-16T00:46:22.306Z".
std::string iso8601(system_time_ms t);

}  // namespace herald
