// What happens to an accepted socket before it is a WebSocket: optional TLS (detected or
// required), HTTP/1.1 requests with keep-alive, limits and timeouts, and the upgrade.
#pragma once

#include "net/net.hpp"

namespace herald::net {

class worker;
struct server_context;

// Takes over a freshly accepted socket. Runs on `w`'s thread.
void serve_connection(tcp::socket socket, listener_role role, worker& w, server_context& ctx);

}  // namespace herald::net
