// The fallback transport for networks that block WebSockets: a Server-Sent Events stream (GET
// sse.path) carries what the server sends, an HTTP POST to the same path what the client sends,
// named by the stream's session token. A stream is a full connection: an id in the registry,
// $connect/$disconnect and routes, channels with history resumed from Last-Event-ID, presence,
// @connections, the send queue's bound and policy, the rate limit and the timeouts.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "herald/delivery/backplane.hpp"
#include "net/http_handler.hpp"
#include "net/net.hpp"
#include "net/server_context.hpp"

namespace herald::net {

class worker;

// What the GET said that the stream needs after its admission.
struct sse_start {
  std::string target;         // path and query: ?channel=a&channel=b subscribes at once
  std::string last_event_id;  // positions of the history channels to resume (EventSource sends it)
  std::string cors_origin;    // an allowed Origin to name in Access-Control-Allow-Origin
};

// The streams open on this node, by session token (thread-safe).
class sse_directory {
 public:
  class sink {
   public:
    virtual ~sink() = default;
    // Thread-safe: hands one client message to the stream's worker; `done` gets the answer.
    virtual void post(std::string body, http_responder done) = 0;
    // Thread-safe: the client ends its stream (DELETE): a normal close (1000).
    virtual void end() = 0;
  };

  void add(const std::string& token, std::weak_ptr<sink> s);
  void remove(const std::string& token);
  std::shared_ptr<sink> find(const std::string& token);

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::weak_ptr<sink>> streams_;
};

// Starts the stream on an admitted GET (the response head is its first write). Runs on `w`.
template <class Stream>
void start_sse_session(Stream stream, connection_info info, admission slot, sse_start start,
                       worker& w, server_context& ctx);

extern template void start_sse_session<plain_stream>(plain_stream, connection_info, admission,
                                                     sse_start, worker&, server_context&);
extern template void start_sse_session<tls_stream>(tls_stream, connection_info, admission,
                                                   sse_start, worker&, server_context&);

// A POST on sse.path: the body is one client message for the stream named by `token`
// ("<connection id>.<secret>"), held by this node or, through the backplane, by another one.
// Answers 202 once the message was handed to routing (replies come on the stream), 404 for an
// unknown or closed stream, 413 over websocket.max_message_bytes, 429 when throttled. `end`
// (a DELETE) ends the stream instead (1000, "closed by client") and answers 204.
void sse_post(server_context& ctx, const std::string& token, std::string body, bool end,
              http_responder done);

// Lets POSTs reach streams on other nodes: forwards those for streams this node does not hold,
// and takes those the other nodes forward here.
void connect_sse_to_backplane(server_context& ctx, backplane& b);

}  // namespace herald::net
