#include "herald/common/json_input.hpp"

#include <nlohmann/json.hpp>

namespace herald {
namespace {

// nlohmann's DOM builder with a depth count in front: returning false from a start_* call stops
// the parser there, so a document nested too deep costs no more than its first max_depth levels.
template <class Json>
class bounded_dom {
 public:
  using number_integer_t = typename Json::number_integer_t;
  using number_unsigned_t = typename Json::number_unsigned_t;
  using number_float_t = typename Json::number_float_t;
  using string_t = typename Json::string_t;
  using binary_t = typename Json::binary_t;

  bounded_dom(Json& result, std::size_t max_depth) : dom_(result, false), max_depth_(max_depth) {}

  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(number_float_t v, const string_t& s) { return dom_.number_float(v, s); }
  bool string(string_t& v) { return dom_.string(v); }
  bool binary(binary_t& v) { return dom_.binary(v); }
  bool start_object(std::size_t n) { return enter() && dom_.start_object(n); }
  bool key(string_t& k) { return dom_.key(k); }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) { return enter() && dom_.start_array(n); }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  template <class Exception>
  bool parse_error(std::size_t position, const std::string& token, const Exception& ex) {
    return dom_.parse_error(position, token, ex);
  }

  bool too_deep() const { return too_deep_; }

 private:
  bool enter() {
    if (++depth_ > max_depth_) {
      too_deep_ = true;
      return false;
    }
    return true;
  }

  nlohmann::detail::json_sax_dom_parser<Json> dom_;
  std::size_t max_depth_;
  std::size_t depth_ = 0;
  bool too_deep_ = false;
};

template <class Json>
Json parse_bounded(std::string_view text, std::size_t max_depth, json_status* status,
                   bool ignore_comments) {
  Json result;
  bounded_dom<Json> sax(result, max_depth);
  const bool ok =
      Json::sax_parse(text.begin(), text.end(), &sax, nlohmann::json::input_format_t::json,
                      /*strict=*/true, ignore_comments);
  json_status why = json_status::ok;
  if (sax.too_deep()) {
    why = json_status::too_deep;
  } else if (!ok || result.is_discarded()) {
    why = json_status::invalid;
  }
  if (status) *status = why;
  if (why != json_status::ok) result = Json(Json::value_t::discarded);
  return result;
}

}  // namespace

nlohmann::json parse_json(std::string_view text, std::size_t max_depth, json_status* status,
                          bool ignore_comments) {
  return parse_bounded<nlohmann::json>(text, max_depth, status, ignore_comments);
}

nlohmann::ordered_json parse_ordered_json(std::string_view text, std::size_t max_depth,
                                          json_status* status) {
  return parse_bounded<nlohmann::ordered_json>(text, max_depth, status, false);
}

std::string describe(json_status status, std::size_t max_depth) {
  switch (status) {
    case json_status::ok:
      return "valid JSON";
    case json_status::invalid:
      return "not valid JSON";
    case json_status::too_deep:
      return "JSON nested deeper than " + std::to_string(max_depth) + " levels";
  }
  return "not valid JSON";
}

namespace {

const nlohmann::json* find_member(const nlohmann::json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

}  // namespace

std::string string_member(const nlohmann::json& object, std::string_view key,
                          std::string_view fallback) {
  const nlohmann::json* v = find_member(object, key);
  return v && v->is_string() ? v->get<std::string>() : std::string(fallback);
}

std::uint64_t uint_member(const nlohmann::json& object, std::string_view key,
                          std::uint64_t fallback) {
  const nlohmann::json* v = find_member(object, key);
  return v && v->is_number_unsigned() ? v->get<std::uint64_t>() : fallback;
}

bool bool_member(const nlohmann::json& object, std::string_view key, bool fallback) {
  const nlohmann::json* v = find_member(object, key);
  return v && v->is_boolean() ? v->get<bool>() : fallback;
}

}  // namespace herald
