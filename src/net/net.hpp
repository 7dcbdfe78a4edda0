// Namespace aliases and common types for the networking layer (Asio and Beast).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/system/error_code.hpp>

namespace herald::net {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using error_code = boost::system::error_code;
using plain_stream = tcp::socket;
using tls_stream = ssl::stream<tcp::socket>;
using steady_clock = std::chrono::steady_clock;

enum class listener_role { client, admin };

}  // namespace herald::net
