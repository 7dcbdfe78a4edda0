// Splits a fuzzer's input into fields at '\0' bytes, so one input can drive a parser that takes
// several strings (a header and a body, a token and a query string).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace herald::fuzz {

inline std::vector<std::string_view> fields(const std::uint8_t* data, std::size_t size,
                                            std::size_t want) {
  std::vector<std::string_view> out;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (out.size() + 1 < want) {
    const auto nul = rest.find('\0');
    if (nul == std::string_view::npos) break;
    out.push_back(rest.substr(0, nul));
    rest.remove_prefix(nul + 1);
  }
  out.push_back(rest);
  while (out.size() < want)
    out.emplace_back();
  return out;
}

}  // namespace herald::fuzz
