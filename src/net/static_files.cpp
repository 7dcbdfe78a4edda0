#include "net/static_files.hpp"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <system_error>

#include "herald/net/static_path.hpp"

namespace herald::net {
namespace {

// A weak validator from size and modification time: enough for a development server and for
// small assets; files are read per request, so edits show up at once.
std::string entity_tag(std::uintmax_t size, std::filesystem::file_time_type mtime) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "W/\"%jx-%llx\"", size,
                static_cast<unsigned long long>(mtime.time_since_epoch().count()));
  return buf;
}

}  // namespace

void static_files::handle(http_request&& req, const request_context& rc, http_responder respond) {
  const bool read_only = req.method() == http::verb::get || req.method() == http::verb::head;
  const std::string_view path = request_path(req.target());
  const auto relative = read_only ? static_file_path(path) : std::nullopt;
  if (!relative) {
    if (next_) return next_->handle(std::move(req), rc, std::move(respond));
    return respond(json_error(http::status::not_found, "not_found", "no such endpoint"));
  }
  std::error_code ec;
  std::filesystem::path file = root_ / *relative;
  auto status = std::filesystem::status(file, ec);
  if (!ec && std::filesystem::is_directory(status)) {
    // "/docs" names a directory: send the browser to "/docs/" so relative links work.
    http_response res{http::status::moved_permanently, 11};
    res.set(http::field::location, std::string(path) + "/");
    return respond(std::move(res));
  }
  const auto size = std::filesystem::file_size(file, ec);
  if (ec || !std::filesystem::is_regular_file(status)) {
    if (next_) return next_->handle(std::move(req), rc, std::move(respond));
    return respond(json_error(http::status::not_found, "not_found", "no such file"));
  }
  if (size > max_file_bytes) {
    return respond(json_error(http::status::internal_server_error, "file_too_large",
                              "static files are served up to 16 MiB"));
  }
  const auto mtime = std::filesystem::last_write_time(file, ec);
  const std::string etag = entity_tag(size, mtime);
  http_response res{http::status::ok, 11};
  res.set(http::field::content_type, static_content_type(*relative));
  res.set(http::field::etag, etag);
  res.set(http::field::cache_control, "no-cache");  // revalidate: cheap with the ETag
  res.set("X-Content-Type-Options", "nosniff");
  if (req[http::field::if_none_match] == etag) {
    res.result(http::status::not_modified);
    return respond(std::move(res));
  }
  std::ifstream in(file, std::ios::binary);
  std::string body{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (!in && !in.eof()) {
    return respond(json_error(http::status::internal_server_error, "read_failed",
                              "the file could not be read"));
  }
  res.body() = std::move(body);
  respond(std::move(res));
}

}  // namespace herald::net
