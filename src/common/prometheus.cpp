#include "herald/common/prometheus.hpp"

#include <charconv>
#include <cmath>

namespace herald {

void prometheus_text::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  for (char c : help) {
    if (c == '\\') {
      out_ += "\\\\";
    } else if (c == '\n') {
      out_ += "\\n";
    } else {
      out_ += c;
    }
  }
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void prometheus_text::head(std::string_view name, labels l) {
  out_ += name;
  if (l.size() == 0) {
    out_ += ' ';
    return;
  }
  out_ += '{';
  bool first = true;
  for (const auto& [k, v] : l) {
    if (!first) out_ += ',';
    first = false;
    out_ += k;
    out_ += "=\"";
    for (char c : v) {
      if (c == '\\' || c == '"') {
        out_ += '\\';
        out_ += c;
      } else if (c == '\n') {
        out_ += "\\n";
      } else {
        out_ += c;
      }
    }
    out_ += '"';
  }
  out_ += "} ";
}

void prometheus_text::sample(std::string_view name, labels l, double value) {
  head(name, l);
  if (std::isnan(value)) {
    out_ += "NaN";
  } else if (std::isinf(value)) {
    out_ += value > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[64];
    auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, value);
    out_.append(buf, ec == std::errc() ? ptr : buf);
  }
  out_ += '\n';
}

void prometheus_text::sample(std::string_view name, labels l, std::uint64_t value) {
  head(name, l);
  out_ += std::to_string(value);
  out_ += '\n';
}

void prometheus_text::sample(std::string_view name, labels l, std::int64_t value) {
  head(name, l);
  out_ += std::to_string(value);
  out_ += '\n';
}

}  // namespace herald
