// What an HTTP backend answers: a Lambda proxy result or a plain answer, and a REQUEST
// authorizer's policy. The first byte picks the status.
#include <string>

#include "herald/auth/authenticator.hpp"
#include "herald/common/json_input.hpp"
#include "herald/integrations/integration.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace herald;
  if (size == 0) return 0;
  static const int statuses[] = {200, 201, 204, 401, 403, 404, 500, 302};
  const int status = statuses[data[0] % 8];
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  interpret_http_answer(response_mode::lambda_proxy, status, {{"Content-Type", "x"}}, body,
                        default_json_max_depth);
  interpret_http_answer(response_mode::http, status, {}, body, default_json_max_depth);
  parse_authorizer_answer(status, body,
                          "arn:aws:execute-api:local:000000000000:herald/default/$connect",
                          default_json_max_depth);
  return 0;
}
