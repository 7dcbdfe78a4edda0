// Namespace aliases and common types for the networking layer (Asio and Beast).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>

#include "net/tls_socket.hpp"

namespace herald::net {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using error_code = boost::system::error_code;
using plain_stream = tcp::socket;
using tls_stream = tls_socket;  // server side; clients (Redis, HTTP integrations) use ssl::stream
using steady_clock = std::chrono::steady_clock;

enum class listener_role { client, admin };

}  // namespace herald::net
