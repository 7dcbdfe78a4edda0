// JSON Web Token verification (RFC 7519 / 7515 / 7518), socket-free: HS256/384/512 with shared
// secrets, RS256/384/512 and ES256/384 with public keys (PEM or a JWKS document).
//
// Built on OpenSSL directly rather than libjwt: Debian 12's libjwt (1.10) takes the algorithm
// from the token's own header and has no JWKS support, so we would have to re-check both
// around it anyway. Here every key is bound to the algorithms it may verify, so `alg: none`
// and algorithm confusion (an RSA public key used as an HMAC secret) cannot verify anything.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace herald::jwt {

enum class algorithm : unsigned {
  hs256 = 1u << 0,
  hs384 = 1u << 1,
  hs512 = 1u << 2,
  rs256 = 1u << 3,
  rs384 = 1u << 4,
  rs512 = 1u << 5,
  es256 = 1u << 6,
  es384 = 1u << 7,
};
inline constexpr unsigned hmac_algorithms = 0x07;
inline constexpr unsigned rsa_algorithms = 0x38;

// "HS256" ... "ES384"; nothing for "none" and every name we do not implement.
bool parse_algorithm(std::string_view name, algorithm& out);
std::string_view algorithm_name(algorithm a);

// One verification key and the algorithms it may verify (a bit set of `algorithm`).
struct key {
  std::string kid;  // empty: matches tokens with any kid (or none)
  unsigned algorithms = 0;
  std::string secret;                 // HMAC keys
  std::shared_ptr<evp_pkey_st> pkey;  // RSA and EC public keys
};

// The keys a verifier accepts. Adding a key checks it (size, type against algorithm) and throws
// std::invalid_argument with a reason fit for a configuration error.
class key_set {
 public:
  void add_secret(std::string kid, algorithm alg, std::string secret);
  // A PEM public key ("-----BEGIN PUBLIC KEY-----") or certificate.
  void add_public_key_pem(std::string kid, algorithm alg, std::string_view pem);
  // A JWKS document ({"keys": [...]}): RSA, EC (P-256, P-384) and oct keys meant for signing.
  // Returns how many keys were taken; throws if none is usable.
  std::size_t add_jwks(std::string_view json_text);

  const std::vector<key>& keys() const { return keys_; }
  bool empty() const { return keys_.empty(); }

 private:
  std::vector<key> keys_;
};

// What a token must satisfy besides its signature.
struct verify_options {
  std::string issuer;                  // empty: not checked
  std::vector<std::string> audience;   // empty: not checked; else one must be in "aud"
  std::chrono::seconds leeway{30};     // clock skew allowed for exp, nbf and iat
  std::size_t max_token_bytes = 8192;  // longer tokens are malformed
  std::size_t max_json_depth = 64;     // header and claims nested deeper are malformed
  bool require_exp = true;             // a token without "exp" never expires: refused
};

enum class error {
  none,
  malformed,         // not three base64url parts of JSON objects, or too long
  unsupported_alg,   // "none", an unknown algorithm, or "crit" extensions
  unknown_key,       // no key with this kid (or none for the algorithm)
  bad_signature,     // no candidate key verifies it
  expired,           // exp + leeway is past
  not_yet_valid,     // nbf - leeway is still ahead
  issued_in_future,  // iat - leeway is ahead
  bad_issuer,        // iss differs from the configured issuer
  bad_audience,      // aud names none of the configured audiences
  bad_claim,         // exp, nbf or iat is not a number
  missing_exp,       // no "exp" claim, and verify_options::require_exp
};
std::string_view describe(error e);

// The outcome of verifying one token.
struct result {
  error err = error::none;
  nlohmann::json claims;  // the payload, when verified
  algorithm alg = algorithm::hs256;
};

// Verifies signature first, then the time claims and iss/aud. `now` is Unix time in seconds.
result verify(std::string_view token, const key_set& keys, const verify_options& options,
              std::int64_t now);

// Strict base64url without padding (RFC 7515 section 2); nothing for anything else.
bool base64url_decode(std::string_view text, std::string& out);
std::string base64url_encode(std::string_view data);

}  // namespace herald::jwt
