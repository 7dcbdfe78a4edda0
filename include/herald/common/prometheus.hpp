// Prometheus text exposition format (version 0.0.4): metric families with HELP and TYPE, label
// values escaped, integers printed exactly.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace herald {

// Writes the Prometheus text exposition format (families, samples, histograms).
class prometheus_text {
 public:
  using labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

  // Starts a family; `type` is counter, gauge or histogram.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, labels l, double value);
  void sample(std::string_view name, labels l, std::uint64_t value);
  void sample(std::string_view name, labels l, std::int64_t value);

  const std::string& text() const { return out_; }

 private:
  void head(std::string_view name, labels l);
  std::string out_;
};

}  // namespace herald
