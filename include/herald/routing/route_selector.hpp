// API Gateway route selection expressions, compiled once and evaluated per message.
//
//   $request.body.action                       the value at a JSON path of the message body
//   ${request.body.service}/${request.body.action}   paths wrapped in ${...} mixed with text
//   action                                     a static route key
//   \$default                                  "\$" is a literal dollar sign
//
// Paths are dotted names with optional [index] steps (`$request.body.items[0].type`). A missing
// path yields "". Strings are used as they are, numbers and booleans as JSON text, null as "",
// arrays as "[a, b]" and objects as compact JSON. A body that is not JSON cannot be evaluated
// (unless the expression is static), and the message goes to $default.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace herald {

// Evaluates routing.selection_expression on a message to a route key.
class route_selector {
 public:
  // Throws std::invalid_argument with a readable reason for a malformed expression.
  explicit route_selector(std::string_view expression);

  // The route key for a message body, or nullopt when the body cannot be evaluated (not JSON,
  // or nested deeper than max_depth).
  std::optional<std::string> select(std::string_view body, std::size_t max_depth) const;
  // The route key for a body already parsed (with a depth bound: evaluation recurses into the
  // arrays it prints), or nullopt when `body` is discarded (was not JSON).
  std::optional<std::string> select(const nlohmann::json& body) const;
  // The key of a static expression (is_static()).
  const std::string& static_key() const { return std::get<std::string>(parts_.front()); }

  bool is_static() const { return static_; }
  const std::string& expression() const { return expression_; }

 private:
  struct step {
    std::string key;  // object member; empty for an index step
    long index = -1;  // array index, or -1
  };
  using path = std::vector<step>;
  using part = std::variant<std::string, path>;  // literal text or a body path

  std::string expression_;
  std::vector<part> parts_;
  bool static_ = true;
};

}  // namespace herald
