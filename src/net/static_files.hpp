// GET/HEAD of files under http.static_dir on the client listener (the demo page, or a small
// web app served next to its WebSocket). Off unless configured.
#pragma once

#include <filesystem>

#include "net/http_handler.hpp"

namespace herald::net {

// Serves http.static_dir (GET and HEAD, no listings, no escapes).
class static_files : public http_handler {
 public:
  // `next` answers what is not a file here (nullptr: 404).
  static_files(std::filesystem::path root, http_handler* next)
      : root_(std::move(root)), next_(next) {}
  void handle(http_request&& req, const request_context& rc, http_responder respond) override;

  static constexpr std::uintmax_t max_file_bytes = 16 * 1024 * 1024;

 private:
  std::filesystem::path root_;
  http_handler* next_;
};

}  // namespace herald::net
