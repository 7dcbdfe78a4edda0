#include "herald/net/static_path.hpp"

#include <array>
#include <utility>

#include "herald/routing/event.hpp"

namespace herald {

std::optional<std::string> static_file_path(std::string_view url_path) {
  if (url_path.empty() || url_path.front() != '/') return std::nullopt;
  auto decoded = url_decode_strict(url_path);
  if (!decoded) return std::nullopt;
  for (char c : *decoded) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '\\') return std::nullopt;
  }
  // Every segment between slashes must be a plain name: not empty (no "//"), and not starting
  // with "." (no "..", no ".", no hidden files). Only the last one may be empty: a directory.
  std::string out = decoded->substr(1);
  for (std::size_t start = 0;;) {
    const std::size_t slash = out.find('/', start);
    const std::size_t end = slash == std::string::npos ? out.size() : slash;
    if (end == start) {
      if (slash != std::string::npos) return std::nullopt;  // an empty segment: "//"
    } else if (out[start] == '.') {
      return std::nullopt;
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (out.empty() || out.back() == '/') out += "index.html";
  return out;
}

std::string_view static_content_type(std::string_view file_name) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 14> types{{
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".ico", "image/x-icon"},
      {".webp", "image/webp"},
      {".woff2", "font/woff2"},
      {".wasm", "application/wasm"},
  }};
  const auto dot = file_name.rfind('.');
  const auto slash = file_name.rfind('/');
  if (dot != std::string_view::npos && (slash == std::string_view::npos || dot > slash)) {
    std::string ext(file_name.substr(dot));
    for (char& c : ext) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    for (const auto& [e, type] : types) {
      if (ext == e) return type;
    }
  }
  return "application/octet-stream";
}

}  // namespace herald
