// Mapping a request path onto a file under the static directory (http.static_dir), without
// touching the file system: pure, so it is unit-tested and fuzzed like the other parsers.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace herald {

// The relative file path a URL path names: percent-decoded, "/" → "index.html", a trailing
// "/" → ".../index.html". nullopt when the path could leave the directory or is not plain:
// ".." or "." segments, empty segments ("//"), backslashes, NUL or control bytes, a bad
// percent escape, a segment starting with "." (hidden files such as .git or .env), or a
// path that does not start with "/".
std::optional<std::string> static_file_path(std::string_view url_path);

// The Content-Type for a file name, by extension ("application/octet-stream" if unknown).
std::string_view static_content_type(std::string_view file_name);

}  // namespace herald
