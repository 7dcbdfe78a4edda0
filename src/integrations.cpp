#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "herald/integration.hpp"
#include "herald/text.hpp"
#include "herald/ws/handshake.hpp"

namespace herald {
namespace {

// Sends the message straight back.
class echo_integration final : public integration {
 public:
  bool wants_event() const override { return false; }
  void invoke(const invocation& inv, integration_callback done) override {
    integration_result r;
    r.has_body = true;
    if (inv.body_base64) {
      // A binary frame (delivered base64-encoded) goes back as the same bytes.
      r.body = ws::base64_decode(inv.body).value_or(std::string());
      r.binary = true;
    } else {
      r.body = std::string(inv.body);
    }
    done(std::move(r));
  }
};

// Answers every call the same way: handy for tests, demos and a $connect that rejects.
class mock_integration final : public integration {
 public:
  explicit mock_integration(const integration_config& cfg) : cfg_(cfg) {}
  bool wants_event() const override { return false; }
  void invoke(const invocation&, integration_callback done) override {
    integration_result r;
    r.status = cfg_.status;
    r.headers = cfg_.response_headers;
    r.body = cfg_.body;
    r.has_body = !r.body.empty();
    done(std::move(r));
  }

 private:
  const integration_config cfg_;
};

}  // namespace

std::unique_ptr<integration> make_builtin_integration(const integration_config& cfg) {
  switch (cfg.kind) {
    case integration_kind::echo:
      return std::make_unique<echo_integration>();
    case integration_kind::mock:
      return std::make_unique<mock_integration>(cfg);
    case integration_kind::http:
      break;
  }
  throw std::logic_error("not a built-in integration: " + cfg.name);
}

std::string_view find_header(const string_pairs& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return {};
}

}  // namespace herald
