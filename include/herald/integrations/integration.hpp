// What routes hand messages to: a backend over HTTP, a built-in, and later a Redis stream.
// An integration is shared by all workers; it is invoked on a worker thread and completes on
// that same thread, so it may keep per-worker state without locks.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "herald/common/worker_poster.hpp"
#include "herald/config/config.hpp"
#include "herald/delivery/connection.hpp"
#include "herald/routing/event.hpp"

namespace herald {

// One call. Views are valid only during invoke(); asynchronous integrations copy what they keep.
struct invocation {
  event_type type = event_type::message;
  std::string_view route_key;
  std::string_view request_id;
  std::string_view connection_id;
  std::string_view body;  // MESSAGE: the frame's text (base64 of a binary frame)
  bool body_base64 = false;
  std::string_view event;  // the API Gateway event JSON (when wants_event())
  unsigned worker = 0;
};

// What an integration answered (or why it failed).
struct integration_result {
  bool ok = true;        // false: the integration failed (unreachable, timeout, 5xx, bad answer)
  std::string error;     // why it failed, for the log
  int status = 200;      // the status the backend chose (Lambda-proxy statusCode)
  string_pairs headers;  // the backend's response headers (Lambda-proxy headers)
  std::string body;
  bool has_body = false;  // an answer to send back on two-way routes (it may be empty)
  bool binary = false;    // body holds raw bytes to send as a binary frame
  bool ack = false;       // a store-first acknowledgement: sent back on one-way routes too
  // From a Lambda proxy answer to $connect (a Herald extension, shaped like an authorizer's
  // output): "principalId" and "context", passed to every later event as requestContext.authorizer.
  std::string principal_id;
  string_pairs context;

  static integration_result failure(std::string why) {
    integration_result r;
    r.ok = false;
    r.status = 500;
    r.error = std::move(why);
    return r;
  }
};

using integration_callback = std::function<void(integration_result)>;

// Where a route sends its events: an HTTP backend, a Redis stream, or a built-in.
class integration {
 public:
  virtual ~integration() = default;
  // Whether invoke() needs invocation::event (building it costs a JSON serialisation).
  virtual bool wants_event() const { return true; }
  virtual void invoke(const invocation& inv, integration_callback done) = 0;
};

// echo and mock.
std::unique_ptr<integration> make_builtin_integration(const integration_config& cfg);

class backplane;

// redis_stream (store-first): appends the MESSAGE event to a Redis stream and answers the
// client {"type":"ack","requestId":...} once Redis has it; workers process it later.
std::unique_ptr<integration> make_stream_integration(const integration_config& cfg,
                                                     const std::string& key_prefix,
                                                     backplane& backplane, worker_poster post);

// How a backend's HTTP answer becomes a result: in lambda_proxy mode a 2xx JSON body with
// "statusCode" is a Lambda proxy result ({statusCode, headers, multiValueHeaders, body,
// isBase64Encoded, principalId, context}); anything else is the answer as it is. 5xx fails, as
// does a Lambda proxy result nested deeper than `max_json_depth`.
integration_result interpret_http_answer(response_mode mode, int status, string_pairs headers,
                                         std::string body, std::size_t max_json_depth);

// Case-insensitive lookup in a header list; empty when absent.
std::string_view find_header(const string_pairs& headers, std::string_view name);

}  // namespace herald
