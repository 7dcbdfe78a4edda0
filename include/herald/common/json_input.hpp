// JSON that Herald did not produce itself (client frames, admin API bodies, backend and
// authorizer answers, tokens and JWKS, Redis payloads, configuration) is parsed only through
// here. Parsing and destroying a document are iterative in nlohmann/json, but dumping, copying
// and comparing one recurse once per level: a 100 KB frame nested 50,000 deep overflowed the
// stack. The nesting is bounded while parsing, before anything can recurse over the document.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace herald {

// limits.json_max_depth's default: far deeper than any real message, far shallower than what
// recursion over a document can survive (each level is a few hundred bytes of stack).
inline constexpr std::size_t default_json_max_depth = 64;
// What `limits.json_max_depth` may be configured to.
inline constexpr std::size_t max_json_max_depth = 1000;

enum class json_status {
  ok,
  invalid,   // not JSON (or trailing bytes)
  too_deep,  // arrays and objects nested deeper than max_depth
};

// Parses `text`. On failure the result is a discarded value (is_discarded()) and `status`, when
// given, says why. A depth of 1 allows `[1]` and `{"a":1}`, 2 allows `{"a":[1]}`, and so on;
// scalars have depth 0. Stops at the first level beyond max_depth (no work past it).
nlohmann::json parse_json(std::string_view text, std::size_t max_depth,
                          json_status* status = nullptr, bool ignore_comments = false);

// The same for an ordered_json document (member order kept).
nlohmann::ordered_json parse_ordered_json(std::string_view text, std::size_t max_depth,
                                          json_status* status = nullptr);

// Members of an object from outside, read without throwing: `fallback` when `object` is not an
// object, the member is missing, or it has another type (nlohmann's value() throws on a type
// mismatch, so a Redis message with {"op": 5} would otherwise take a node down).
std::string string_member(const nlohmann::json& object, std::string_view key,
                          std::string_view fallback = {});
std::uint64_t uint_member(const nlohmann::json& object, std::string_view key,
                          std::uint64_t fallback);
bool bool_member(const nlohmann::json& object, std::string_view key, bool fallback);

// One line for logs and error messages, e.g. "nested deeper than 64 levels".
std::string describe(json_status status, std::size_t max_depth);

}  // namespace herald
