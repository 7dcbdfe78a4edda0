// SigV4-signed admin requests: Authorization, X-Amz-Date, the target and the body as sent.
#include <string>

#include "fuzz_input.hpp"
#include "herald/auth/sigv4.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace herald;
  const auto f = fuzz::fields(data, size, 4);
  const string_pairs headers{{"Authorization", std::string(f[0])},
                             {"X-Amz-Date", std::string(f[1])},
                             {"Host", "127.0.0.1:8081"},
                             {"x-amz-content-sha256", "UNSIGNED-PAYLOAD"}};
  sigv4_key key;
  key.access_key_id = "AKIDEXAMPLE";
  key.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  sigv4_request req;
  req.method = "POST";
  req.target = f[2];
  req.headers = &headers;
  req.body = f[3];
  verify_sigv4(req, key, 1'700'000'000'000);
  aws_uri_encode(f[2], true);
  return 0;
}
