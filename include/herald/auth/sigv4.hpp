// AWS Signature Version 4 verification for the admin API, so AWS SDKs can sign requests to
// Herald as they do to API Gateway (service "execute-api"). Socket-free.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "herald/delivery/connection.hpp"

namespace herald {

// The credentials and scope SigV4 requests are checked against (admin.sigv4).
struct sigv4_key {
  std::string access_key_id;
  std::string secret_access_key;
  std::string region;  // empty: any region
  std::string service = "execute-api";
  std::chrono::milliseconds max_skew = std::chrono::minutes(5);
};

// The parts of an HTTP request a SigV4 signature covers.
struct sigv4_request {
  std::string_view method;
  std::string_view target;  // path and query exactly as on the wire
  const string_pairs* headers = nullptr;
  std::string_view body;
};

enum class sigv4_status {
  ok,
  missing,      // no AWS4-HMAC-SHA256 Authorization header
  malformed,    // unparsable Authorization, date or scope
  unknown_key,  // not our access key id
  wrong_scope,  // other service or region, or the scope date differs from the request date
  expired,      // request time outside the allowed clock skew (replays are refused this way)
  bad_payload,  // x-amz-content-sha256 does not match the body
  bad_signature,
};

// Whether a request's signature is valid, and why not.
struct sigv4_outcome {
  sigv4_status status = sigv4_status::missing;
  std::string detail;  // for logs; never contains secrets
};

sigv4_outcome verify_sigv4(const sigv4_request& req, const sigv4_key& key, system_time_ms now);

// Exposed for tests: the pieces of the signature computation.
std::string sigv4_canonical_request(const sigv4_request& req, std::string_view signed_headers,
                                    std::string_view payload_hash);
std::string sigv4_signature(std::string_view secret, std::string_view date, std::string_view region,
                            std::string_view service, std::string_view string_to_sign);
std::string sha256_hex(std::string_view data);
// RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ (and '/' if asked).
std::string aws_uri_encode(std::string_view s, bool keep_slash);

}  // namespace herald
