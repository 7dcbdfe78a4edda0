// Deep and wide JSON at every parser of outside JSON. libFuzzer's inputs are short (-max_len), so
// the nesting is amplified here: the first two bytes pick how many levels (up to 65,535) of
// arrays or objects wrap the rest of the input, which the fuzzer mutates freely. A reader that
// recursed over such a document would overflow the stack; every one must refuse it instead.
#include <string>

#include "herald/auth/authenticator.hpp"
#include "herald/common/json_input.hpp"
#include "herald/integrations/integration.hpp"
#include "herald/routing/route_selector.hpp"
#include "redis/payload.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace herald;
  if (size < 2) return 0;
  const std::size_t levels = static_cast<std::size_t>(data[0]) << 8 | data[1];
  const std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  // Odd levels are objects, even ones arrays; wide inputs come from the mutated rest.
  std::string doc;
  doc.reserve(levels * 3 + rest.size());
  for (std::size_t i = 0; i < levels; ++i)
    doc += i % 2 ? "{\"k\":" : "[";
  doc += rest;
  for (std::size_t i = levels; i-- > 0;)
    doc += i % 2 ? "}" : "]";

  json_status status{};
  const auto parsed = parse_json(doc, default_json_max_depth, &status);
  if (levels > default_json_max_depth && status == json_status::ok) __builtin_trap();
  if (!parsed.is_discarded()) (void)parsed.dump();  // what callers do with an accepted document

  static const route_selector selector("$request.body.k");
  (void)selector.select("{\"k\":" + doc + "}", default_json_max_depth);
  const auto in = redis::parse_payload(doc, default_json_max_depth);
  if (in.data_json.empty() == in.refused.empty()) __builtin_trap();
  (void)interpret_http_answer(response_mode::lambda_proxy, 200, {},
                              "{\"statusCode\":200,\"body\":" + doc + "}", default_json_max_depth);
  (void)parse_authorizer_answer(200, "{\"principalId\":\"p\",\"context\":" + doc + "}",
                                "arn:aws:execute-api:local:000000000000:herald/default/$connect",
                                default_json_max_depth);
  return 0;
}
