#include "herald/routing/route_selector.hpp"

#include <cctype>

#include <nlohmann/json.hpp>

#include "herald/common/json_input.hpp"

namespace herald {
namespace {

using nlohmann::json;

constexpr std::string_view kBodyPrefix = "request.body.";

std::string stringify(const json& v) {
  switch (v.type()) {
    case json::value_t::string:
      return v.get_ref<const std::string&>();
    case json::value_t::null:
    case json::value_t::discarded:
      return {};
    case json::value_t::array: {
      std::string out = "[";
      bool first = true;
      for (const auto& item : v) {
        if (!first) out += ", ";
        first = false;
        out += stringify(item);
      }
      return out + "]";
    }
    default:
      return v.dump();
  }
}

}  // namespace

route_selector::route_selector(std::string_view expression) : expression_(expression) {
  const auto parse_path = [&](std::string_view text) {
    path p;
    std::size_t i = 0;
    if (text.empty()) throw std::invalid_argument("empty path after request.body.");
    while (i < text.size()) {
      if (text[i] == '[') {
        const auto close = text.find(']', i);
        if (close == std::string_view::npos || close == i + 1) {
          throw std::invalid_argument("unterminated or empty [index] in \"" + std::string(text) +
                                      "\"");
        }
        long index = 0;
        for (std::size_t k = i + 1; k < close; ++k) {
          if (!std::isdigit(static_cast<unsigned char>(text[k])) || index > 1'000'000) {
            throw std::invalid_argument("array index must be a number in \"" + std::string(text) +
                                        "\"");
          }
          index = index * 10 + (text[k] - '0');
        }
        p.push_back({"", index});
        i = close + 1;
        if (i < text.size() && text[i] == '.') ++i;
        continue;
      }
      std::size_t end = i;
      while (end < text.size() && text[end] != '.' && text[end] != '[')
        ++end;
      if (end == i) throw std::invalid_argument("empty name in path \"" + std::string(text) + "\"");
      p.push_back({std::string(text.substr(i, end - i)), -1});
      i = end;
      if (i < text.size() && text[i] == '.') {
        ++i;
        if (i == text.size()) throw std::invalid_argument("path ends with '.'");
      }
    }
    return p;
  };

  // The whole expression is one unbraced path: $request.body.<path>.
  if (expression.size() > 1 && expression[0] == '$' &&
      expression.substr(1).starts_with(kBodyPrefix)) {
    const std::string_view rest = expression.substr(1 + kBodyPrefix.size());
    if (rest.find_first_of("${}\\/ ") == std::string_view::npos) {
      parts_.emplace_back(parse_path(rest));
      static_ = false;
      return;
    }
  }

  std::string literal;
  for (std::size_t i = 0; i < expression.size(); ++i) {
    const char c = expression[i];
    if (c == '\\' && i + 1 < expression.size() && expression[i + 1] == '$') {
      literal += '$';
      ++i;
      continue;
    }
    if (c != '$') {
      literal += c;
      continue;
    }
    if (i + 1 >= expression.size() || expression[i + 1] != '{') {
      throw std::invalid_argument(
          "a '$' must start ${request.body.<path>} (or be the whole $request.body.<path>); write "
          "\\$ "
          "for a literal dollar sign");
    }
    const auto close = expression.find('}', i + 2);
    if (close == std::string_view::npos) throw std::invalid_argument("unterminated ${...}");
    const std::string_view inner = expression.substr(i + 2, close - i - 2);
    if (!inner.starts_with(kBodyPrefix)) {
      throw std::invalid_argument("only ${request.body.<path>} is supported, got ${" +
                                  std::string(inner) + "}");
    }
    if (!literal.empty()) parts_.emplace_back(std::move(literal));
    literal.clear();
    parts_.emplace_back(parse_path(inner.substr(kBodyPrefix.size())));
    static_ = false;
    i = close;
  }
  if (!literal.empty() || parts_.empty()) parts_.emplace_back(std::move(literal));
}

std::optional<std::string> route_selector::select(std::string_view body,
                                                  std::size_t max_depth) const {
  if (static_) return static_key();
  return select(parse_json(body, max_depth));
}

std::optional<std::string> route_selector::select(const json& doc) const {
  if (static_) return static_key();
  if (doc.is_discarded()) return std::nullopt;
  std::string out;
  for (const auto& p : parts_) {
    if (const auto* text = std::get_if<std::string>(&p)) {
      out += *text;
      continue;
    }
    const json* node = &doc;
    for (const auto& s : std::get<path>(p)) {
      if (s.index >= 0) {
        if (!node->is_array() || static_cast<std::size_t>(s.index) >= node->size()) {
          node = nullptr;
          break;
        }
        node = &(*node)[static_cast<std::size_t>(s.index)];
      } else {
        if (!node->is_object()) {
          node = nullptr;
          break;
        }
        const auto it = node->find(s.key);
        if (it == node->end()) {
          node = nullptr;
          break;
        }
        node = &*it;
      }
    }
    if (node) out += stringify(*node);
  }
  return out;
}

}  // namespace herald
