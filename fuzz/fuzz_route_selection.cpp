// Route selection over a client's message body, with the expressions users write.
#include <string>

#include "herald/common/json_input.hpp"
#include "herald/routing/route_selector.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using herald::route_selector;
  static const route_selector selectors[] = {
      route_selector("$request.body.action"),
      route_selector("$request.body.message.type"),
      route_selector("${request.body.service}/${request.body.action}"),
      route_selector("$request.body.items[0].kind"),
  };
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (const auto& s : selectors)
    s.select(body, herald::default_json_max_depth);
  // The expression itself is configuration, but a bad one must fail cleanly, never crash.
  try {
    route_selector(body).select(R"({"action":"x","a":{"b":[1,{"c":"d"}]}})", 8);
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
