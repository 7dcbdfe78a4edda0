// Writing JSON text by hand where a DOM would cost too much (log lines, client frames).
#pragma once

#include <string>
#include <string_view>

namespace herald {

// Appends `s` to `out` as the inside of a JSON string (quotes not included). Control characters
// are escaped; UTF-8 passes through (invalid bytes are the caller's to avoid).
void append_json_escaped(std::string& out, std::string_view s);

}  // namespace herald
