#include <utility>

#include <gtest/gtest.h>

#include "herald/net/static_path.hpp"

using herald::static_content_type;
using herald::static_file_path;

TEST(StaticPath, MapsPathsToFilesUnderTheRoot) {
  const std::pair<const char*, const char*> cases[] = {
      {"/", "index.html"},
      {"/app.js", "app.js"},
      {"/css/site.css", "css/site.css"},
      {"/docs/", "docs/index.html"},
      {"/a%20b.txt", "a b.txt"},
      {"/caf%C3%A9.html", "caf\xC3\xA9.html"},
      {"/v1.2/x..y", "v1.2/x..y"},  // dots inside a name are fine
  };
  for (const auto& [url, file] : cases)
    EXPECT_EQ(static_file_path(url), file) << url;
}

TEST(StaticPath, RefusesEverythingThatCouldLeaveTheRoot) {
  for (const char* bad : {"",
                          "index.html",
                          "/..",
                          "/../etc/passwd",
                          "/a/../../b",
                          "/a/..",
                          "/%2e%2e/x",
                          "/%2E%2e/x",
                          "/a/%2e%2e",
                          "/./a",
                          "/a//b",
                          "//etc/passwd",
                          "/a\\..\\b",
                          "/a%5c..%5cb",
                          "/a%00.html",
                          "/a%0a",
                          "/.git/config",
                          "/.env",
                          "/a/.hidden",
                          "/%",
                          "/%4",
                          "/%zz",
                          "/a%2f..%2f..%2fb"}) {
    EXPECT_EQ(static_file_path(bad), std::nullopt) << bad;
  }
}

TEST(StaticPath, ContentTypesByExtension) {
  const std::pair<const char*, const char*> cases[] = {
      {"index.html", "text/html; charset=utf-8"},
      {"x/APP.JS", "text/javascript; charset=utf-8"},
      {"herald.mjs", "text/javascript; charset=utf-8"},
      {"a.css", "text/css; charset=utf-8"},
      {"logo.svg", "image/svg+xml"},
      {"archive.tar.gz", "application/octet-stream"},
      {"v1.2/README", "application/octet-stream"},
  };
  for (const auto& [file, type] : cases)
    EXPECT_EQ(static_content_type(file), type) << file;
}
