// The built-in console's files, served on the admin listener (GET /console/...). Their bytes are
// compiled in (cmake/embed_assets.cmake over web/console/), so a node always serves the console
// that matches its API, with nothing to install or mount.
#include <string_view>

#include "admin/admin_api.hpp"

namespace herald::net {

namespace assets {
std::string_view console_file(std::string_view name);
}  // namespace assets

namespace {

std::string_view content_type(std::string_view name) {
  if (name.ends_with(".html")) return "text/html; charset=utf-8";
  if (name.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (name.ends_with(".css")) return "text/css; charset=utf-8";
  if (name.ends_with(".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

}  // namespace

http_response console_asset(std::string_view path) {
  if (path == "/console") {
    http_response res{http::status::moved_permanently, 11};
    res.set(http::field::location, "/console/");
    return res;
  }
  std::string_view name = path.substr(std::string_view("/console/").size());
  if (name.empty()) name = "index.html";
  const std::string_view body = assets::console_file(name);
  if (body.empty()) return json_error(http::status::not_found, "not_found", "no such file");
  http_response res{http::status::ok, 11};
  res.set(http::field::content_type, content_type(name));
  // The page runs only its own script and style, talks only to this listener, is never framed,
  // and is revalidated on every load (a new node version ships a new console).
  res.set("Content-Security-Policy",
          "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
  res.set(http::field::cache_control, "no-cache");
  res.body() = std::string(body);
  return res;
}

}  // namespace herald::net
