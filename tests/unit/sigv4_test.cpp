#include <gtest/gtest.h>

#include "herald/auth/sigv4.hpp"

namespace herald {
namespace {

constexpr system_time_ms k20250830 = 1440938160000;  // 2015-08-30T12:36:00Z
constexpr system_time_ms k20251122 = 1763806500000;  // 2025-11-22T10:15:00Z

TEST(SigV4, AwsTestSuiteGetVanilla) {
  // aws-sig-v4-test-suite/get-vanilla.
  const string_pairs headers{{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
  const sigv4_request req{"GET", "/", &headers, ""};
  const std::string canonical = sigv4_canonical_request(req, "host;x-amz-date", sha256_hex(""));
  EXPECT_EQ(canonical,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string to_sign =
      "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n" +
      sha256_hex(canonical);
  EXPECT_EQ(sigv4_signature("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1",
                            "service", to_sign),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");

  string_pairs signed_headers = headers;
  signed_headers.emplace_back(
      "Authorization",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;x-amz-date, "
      "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  sigv4_key key{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", "service"};
  const sigv4_request signed_req{"GET", "/", &signed_headers, ""};
  EXPECT_EQ(verify_sigv4(signed_req, key, k20250830).status, sigv4_status::ok);
}

// A PostToConnection as the JS SDK sends it: the id percent-encoded on the wire, and the
// path encoded once more for signing (reference computed independently).
struct post_fixture {
  string_pairs headers{
      {"Content-Type", "application/octet-stream"},
      {"Host", "127.0.0.1:9000"},
      {"X-Amz-Content-Sha256", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},
      {"X-Amz-Date", "20251122T101500Z"},
      {"Authorization",
       "AWS4-HMAC-SHA256 Credential=HERALDKEY/20251122/eu-west-1/execute-api/aws4_request, "
       "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, "
       "Signature=8ec4a1cce81b62134b6b7682dc2ab736b649ef5e95d511a60ee4bed0ab53bc40"}};
  sigv4_key key{"HERALDKEY", "secretsecret", "", "execute-api"};
  sigv4_request req() const { return {"POST", "/prod/@connections/abc%3D", &headers, "hello"}; }
};

TEST(SigV4, VerifiesAnExecuteApiPost) {
  post_fixture f;
  EXPECT_EQ(verify_sigv4(f.req(), f.key, k20251122).status, sigv4_status::ok);
  EXPECT_EQ(verify_sigv4(f.req(), f.key, k20251122 + 4 * 60 * 1000).status, sigv4_status::ok);
}

TEST(SigV4, RefusesWhatIsWrong) {
  post_fixture f;
  // Another body than the one signed.
  auto tampered = f.req();
  tampered.body = "hellO";
  EXPECT_EQ(verify_sigv4(tampered, f.key, k20251122).status, sigv4_status::bad_payload);
  // Another path.
  auto other_path = f.req();
  other_path.target = "/prod/@connections/abd%3D";
  EXPECT_EQ(verify_sigv4(other_path, f.key, k20251122).status, sigv4_status::bad_signature);
  // Another method.
  auto other_method = f.req();
  other_method.method = "DELETE";
  EXPECT_EQ(verify_sigv4(other_method, f.key, k20251122).status, sigv4_status::bad_signature);
  // Wrong secret, unknown key id, wrong region or service.
  sigv4_key wrong_secret = f.key;
  wrong_secret.secret_access_key = "secretsecreT";
  EXPECT_EQ(verify_sigv4(f.req(), wrong_secret, k20251122).status, sigv4_status::bad_signature);
  sigv4_key other_id = f.key;
  other_id.access_key_id = "OTHER";
  EXPECT_EQ(verify_sigv4(f.req(), other_id, k20251122).status, sigv4_status::unknown_key);
  sigv4_key pinned_region = f.key;
  pinned_region.region = "us-east-1";
  EXPECT_EQ(verify_sigv4(f.req(), pinned_region, k20251122).status, sigv4_status::wrong_scope);
  sigv4_key other_service = f.key;
  other_service.service = "s3";
  EXPECT_EQ(verify_sigv4(f.req(), other_service, k20251122).status, sigv4_status::wrong_scope);
  // Replayed later than the allowed skew, or from the future.
  EXPECT_EQ(verify_sigv4(f.req(), f.key, k20251122 + 6 * 60 * 1000).status, sigv4_status::expired);
  EXPECT_EQ(verify_sigv4(f.req(), f.key, k20251122 - 6 * 60 * 1000).status, sigv4_status::expired);
}

TEST(SigV4, MissingAndMalformedHeaders) {
  const string_pairs none{{"Host", "x"}};
  EXPECT_EQ(verify_sigv4({"GET", "/", &none, ""}, {}, k20251122).status, sigv4_status::missing);
  const string_pairs bearer{{"Host", "x"}, {"Authorization", "Bearer abc"}};
  EXPECT_EQ(verify_sigv4({"GET", "/", &bearer, ""}, {}, k20251122).status, sigv4_status::missing);
  const string_pairs partial{
      {"Host", "x"},
      {"Authorization", "AWS4-HMAC-SHA256 Credential=A/20251122/r/execute-api/aws4_request"}};
  EXPECT_EQ(
      verify_sigv4({"GET", "/", &partial, ""}, {"A", "s", "", "execute-api"}, k20251122).status,
      sigv4_status::malformed);
  post_fixture f;
  string_pairs no_date;
  for (const auto& h : f.headers) {
    if (h.first != "X-Amz-Date") no_date.push_back(h);
  }
  EXPECT_EQ(verify_sigv4({"POST", "/prod/@connections/abc%3D", &no_date, "hello"}, f.key, k20251122)
                .status,
            sigv4_status::malformed);
}

TEST(SigV4, CanonicalQueryIsSortedAndEncoded) {
  const string_pairs headers{{"Host", "h"}};
  const std::string c =
      sigv4_canonical_request({"GET", "/a b/x?b=2&a=%20z&a=1", &headers, ""}, "host", "p");
  EXPECT_EQ(c, "GET\n/a%20b/x\na=%20z&a=1&b=2\nhost:h\n\nhost\np");
  EXPECT_EQ(aws_uri_encode("a-_.~/@=", false), "a-_.~%2F%40%3D");
}

}  // namespace
}  // namespace herald
