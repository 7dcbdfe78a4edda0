#include "herald/auth/jwt.hpp"

#include <array>
#include <cstring>
#include <stdexcept>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "herald/common/json_input.hpp"

namespace herald::jwt {
namespace {

using nlohmann::json;

// How one JWS algorithm is verified.
struct alg_info {
  algorithm alg;
  std::string_view name;
  const EVP_MD* (*md)();
  std::size_t min_secret;  // HMAC: RFC 7518 3.2, a key at least as long as the hash
  std::size_t ec_coord;    // ECDSA: bytes of r and of s in the JOSE signature
};

constexpr std::array<alg_info, 8> kAlgs{{
    {algorithm::hs256, "HS256", EVP_sha256, 32, 0},
    {algorithm::hs384, "HS384", EVP_sha384, 48, 0},
    {algorithm::hs512, "HS512", EVP_sha512, 64, 0},
    {algorithm::rs256, "RS256", EVP_sha256, 0, 0},
    {algorithm::rs384, "RS384", EVP_sha384, 0, 0},
    {algorithm::rs512, "RS512", EVP_sha512, 0, 0},
    {algorithm::es256, "ES256", EVP_sha256, 0, 32},
    {algorithm::es384, "ES384", EVP_sha384, 0, 48},
}};

const alg_info& info(algorithm a) {
  for (const auto& i : kAlgs) {
    if (i.alg == a) return i;
  }
  return kAlgs[0];
}

unsigned bit(algorithm a) {
  return static_cast<unsigned>(a);
}

using pkey_ptr = std::shared_ptr<EVP_PKEY>;
pkey_ptr own(EVP_PKEY* p) {
  return pkey_ptr(p, EVP_PKEY_free);
}

// Frees an OpenSSL BIGNUM.
struct bn_deleter {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using bn_ptr = std::unique_ptr<BIGNUM, bn_deleter>;

// The algorithms a public key may verify, from its type (and curve).
unsigned algorithms_for(EVP_PKEY* pkey) {
  if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA) {
    if (EVP_PKEY_get_bits(pkey) < 2048) throw std::invalid_argument("RSA keys need >= 2048 bits");
    return rsa_algorithms;
  }
  if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC) {
    char group[64] = {};
    std::size_t len = 0;
    if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &len) != 1)
      throw std::invalid_argument("EC key without a named curve");
    const std::string_view g(group, len);
    if (g == "prime256v1" || g == "P-256") return bit(algorithm::es256);
    if (g == "secp384r1" || g == "P-384") return bit(algorithm::es384);
    throw std::invalid_argument("EC curve " + std::string(g) + " is not supported (P-256, P-384)");
  }
  throw std::invalid_argument("only RSA and EC public keys are supported");
}

// A public key of `type` ("RSA", "EC") from the parameters `push` adds to a builder; null if
// OpenSSL does not accept them.
template <class Push>
EVP_PKEY* public_key_from_params(const char* type, Push push) {
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM* params = nullptr;
  EVP_PKEY_CTX* ctx = nullptr;
  EVP_PKEY* pkey = nullptr;
  if (bld && push(bld) && (params = OSSL_PARAM_BLD_to_param(bld)) &&
      (ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr)) &&
      EVP_PKEY_fromdata_init(ctx) == 1) {
    if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) pkey = nullptr;
  }
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  return pkey;
}

pkey_ptr rsa_from_jwk(const std::string& n, const std::string& e) {
  bn_ptr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                        static_cast<int>(n.size()), nullptr));
  bn_ptr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                        static_cast<int>(e.size()), nullptr));
  EVP_PKEY* pkey = nullptr;
  if (bn_n && bn_e) {
    pkey = public_key_from_params("RSA", [&](OSSL_PARAM_BLD* bld) {
      return OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n.get()) &&
             OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e.get());
    });
  }
  if (!pkey) throw std::invalid_argument("unusable RSA key (n, e)");
  return own(pkey);
}

pkey_ptr ec_from_jwk(const std::string& crv, const std::string& x, const std::string& y) {
  const char* group = crv == "P-256" ? "prime256v1" : crv == "P-384" ? "secp384r1" : nullptr;
  const std::size_t coord = crv == "P-256" ? 32 : 48;
  if (!group) throw std::invalid_argument("EC curve " + crv + " is not supported (P-256, P-384)");
  if (x.size() != coord || y.size() != coord) throw std::invalid_argument("bad EC coordinates");
  std::string point = "\x04" + x + y;
  EVP_PKEY* pkey = public_key_from_params("EC", [&](OSSL_PARAM_BLD* bld) {
    return OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) &&
           OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                            point.size());
  });
  if (!pkey) throw std::invalid_argument("unusable EC key (a point not on the curve?)");
  // The point must be on the curve.
  EVP_PKEY_CTX* check = EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr);
  const bool ok = check && EVP_PKEY_public_check(check) == 1;
  EVP_PKEY_CTX_free(check);
  if (!ok) {
    EVP_PKEY_free(pkey);
    throw std::invalid_argument("EC point is not on the curve");
  }
  return own(pkey);
}

std::string member_bytes(const json& jwk, const char* name) {
  const auto it = jwk.find(name);
  std::string out;
  if (it == jwk.end() || !it->is_string() || !base64url_decode(it->get<std::string>(), out) ||
      out.empty()) {
    throw std::invalid_argument(std::string("missing or invalid \"") + name + "\"");
  }
  return out;
}

// A member that must be a string when present (another type is an error naming it); absent
// gives "". (herald::string_member is the lenient reader: a wrong type gives its fallback.)
std::string checked_string_member(const json& jwk, const char* name) {
  const auto it = jwk.find(name);
  if (it == jwk.end()) return {};
  if (!it->is_string())
    throw std::invalid_argument(std::string("\"") + name + "\" is not a string");
  return it->get<std::string>();
}

bool digest_verify(EVP_PKEY* pkey, const EVP_MD* md, std::string_view data,
                   const unsigned char* sig, std::size_t sig_len) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) return false;
  const bool ok =
      EVP_DigestVerifyInit(ctx, nullptr, md, nullptr, pkey) == 1 &&
      EVP_DigestVerify(ctx, sig, sig_len, reinterpret_cast<const unsigned char*>(data.data()),
                       data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

bool verify_with(const key& k, const alg_info& a, std::string_view signing_input,
                 const std::string& sig) {
  if (bit(a.alg) & hmac_algorithms) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(a.md(), k.secret.data(), static_cast<int>(k.secret.size()),
              reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(),
              mac, &mac_len)) {
      return false;
    }
    return sig.size() == mac_len && CRYPTO_memcmp(mac, sig.data(), mac_len) == 0;
  }
  if (!k.pkey) return false;
  if (bit(a.alg) & rsa_algorithms) {
    return digest_verify(k.pkey.get(), a.md(), signing_input,
                         reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
  }
  // ECDSA: JOSE sends r || s at fixed width; OpenSSL wants DER.
  if (sig.size() != 2 * a.ec_coord) return false;
  ECDSA_SIG* es = ECDSA_SIG_new();
  if (!es) return false;
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()),
                        static_cast<int>(a.ec_coord), nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data() + a.ec_coord),
                        static_cast<int>(a.ec_coord), nullptr);
  if (!r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return false;
  }
  unsigned char* der = nullptr;
  const int der_len = i2d_ECDSA_SIG(es, &der);
  ECDSA_SIG_free(es);
  if (der_len <= 0) return false;
  const bool ok =
      digest_verify(k.pkey.get(), a.md(), signing_input, der, static_cast<std::size_t>(der_len));
  OPENSSL_free(der);
  return ok;
}

bool numeric_claim(const json& claims, const char* name, std::int64_t& out, bool& bad) {
  const auto it = claims.find(name);
  if (it == claims.end()) return false;
  if (!it->is_number()) {
    bad = true;
    return false;
  }
  // NumericDate may carry fractions; whole seconds are enough here. Clamp absurd values.
  const double v = it->get<double>();
  if (!(v > -1e15 && v < 1e15)) {
    bad = true;
    return false;
  }
  out = static_cast<std::int64_t>(v);
  return true;
}

int b64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

}  // namespace

bool parse_algorithm(std::string_view name, algorithm& out) {
  for (const auto& i : kAlgs) {
    if (i.name == name) {
      out = i.alg;
      return true;
    }
  }
  return false;
}

std::string_view algorithm_name(algorithm a) {
  return info(a).name;
}

std::string_view describe(error e) {
  switch (e) {
    case error::none:
      return "ok";
    case error::malformed:
      return "malformed token";
    case error::unsupported_alg:
      return "unsupported algorithm";
    case error::unknown_key:
      return "unknown key";
    case error::bad_signature:
      return "bad signature";
    case error::expired:
      return "token expired";
    case error::not_yet_valid:
      return "token not yet valid";
    case error::issued_in_future:
      return "token issued in the future";
    case error::bad_issuer:
      return "wrong issuer";
    case error::bad_audience:
      return "wrong audience";
    case error::bad_claim:
      return "invalid time claim";
    case error::missing_exp:
      return "token has no exp claim";
  }
  return "invalid token";
}

bool base64url_decode(std::string_view text, std::string& out) {
  out.clear();
  if (text.size() % 4 == 1) return false;
  out.reserve(text.size() * 3 / 4);
  unsigned acc = 0;
  int bits = 0;
  for (const char c : text) {
    const int v = b64url_value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  // Canonical form only: leftover bits must be zero.
  return (acc & ((1u << bits) - 1)) == 0;
}

std::string base64url_encode(std::string_view data) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  unsigned acc = 0;
  int bits = 0;
  for (const unsigned char c : data) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += alphabet[(acc >> bits) & 0x3F];
    }
  }
  if (bits > 0) out += alphabet[(acc << (6 - bits)) & 0x3F];
  return out;
}

void key_set::add_secret(std::string kid, algorithm alg, std::string secret) {
  const alg_info& a = info(alg);
  if (!(bit(alg) & hmac_algorithms))
    throw std::invalid_argument(std::string(a.name) + " needs a public key, not a secret");
  if (secret.size() < a.min_secret) {
    throw std::invalid_argument(std::string(a.name) + " needs a secret of at least " +
                                std::to_string(a.min_secret) + " bytes (RFC 7518), got " +
                                std::to_string(secret.size()));
  }
  keys_.push_back({std::move(kid), bit(alg), std::move(secret), nullptr});
}

void key_set::add_public_key_pem(std::string kid, algorithm alg, std::string_view pem) {
  const alg_info& a = info(alg);
  if (bit(alg) & hmac_algorithms)
    throw std::invalid_argument(std::string(a.name) + " needs a secret, not a public key");
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (!bio) throw std::invalid_argument("out of memory");
  EVP_PKEY* pkey = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  if (!pkey) {
    // A certificate works too: its public key is taken.
    BIO_reset(bio);
    if (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      pkey = X509_get_pubkey(cert);
      X509_free(cert);
    }
  }
  BIO_free(bio);
  if (!pkey) throw std::invalid_argument("not a PEM public key or certificate");
  auto owned = own(pkey);
  const unsigned allowed = algorithms_for(pkey);
  if (!(allowed & bit(alg))) {
    throw std::invalid_argument("the key's type does not fit " + std::string(a.name));
  }
  keys_.push_back({std::move(kid), bit(alg), {}, std::move(owned)});
}

std::size_t key_set::add_jwks(std::string_view json_text) {
  const json doc = parse_json(json_text, default_json_max_depth);
  if (!doc.is_object() || !doc.contains("keys") || !doc["keys"].is_array())
    throw std::invalid_argument("not a JWKS document ({\"keys\": [...]})");
  std::size_t taken = 0;
  std::size_t index = 0;
  for (const json& jwk : doc["keys"]) {
    const std::string where = "keys[" + std::to_string(index++) + "]: ";
    if (!jwk.is_object()) throw std::invalid_argument(where + "not an object");
    const auto use = jwk.find("use");
    if (use != jwk.end() && *use != "sig") continue;  // encryption keys are not for us
    std::string kty, kid;
    try {
      kty = checked_string_member(jwk, "kty");
      kid = checked_string_member(jwk, "kid");
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(where + e.what());
    }
    unsigned only = ~0u;
    if (const auto a = jwk.find("alg"); a != jwk.end()) {
      algorithm alg{};
      if (!a->is_string() || !parse_algorithm(a->get<std::string>(), alg)) continue;
      only = bit(alg);
    }
    try {
      key k;
      k.kid = kid;
      if (kty == "RSA") {
        k.pkey = rsa_from_jwk(member_bytes(jwk, "n"), member_bytes(jwk, "e"));
        k.algorithms = algorithms_for(k.pkey.get()) & only;
      } else if (kty == "EC") {
        k.pkey = ec_from_jwk(checked_string_member(jwk, "crv"), member_bytes(jwk, "x"),
                             member_bytes(jwk, "y"));
        k.algorithms = algorithms_for(k.pkey.get()) & only;
      } else if (kty == "oct") {
        k.secret = member_bytes(jwk, "k");
        k.algorithms = hmac_algorithms & only;
        // Each HMAC algorithm needs a key at least as long as its hash.
        for (const auto& i : kAlgs) {
          if ((k.algorithms & bit(i.alg)) && k.secret.size() < i.min_secret)
            k.algorithms &= ~bit(i.alg);
        }
      } else {
        continue;  // unknown key types are skipped, as RFC 7517 asks
      }
      if (k.algorithms == 0) continue;
      keys_.push_back(std::move(k));
      ++taken;
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(where + e.what());
    }
  }
  if (taken == 0) throw std::invalid_argument("no usable signing key in the JWKS document");
  return taken;
}

result verify(std::string_view token, const key_set& keys, const verify_options& options,
              std::int64_t now) {
  result r;
  r.err = error::malformed;
  if (token.empty() || token.size() > options.max_token_bytes) return r;
  const auto dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return r;
  const auto dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return r;
  std::string header_text, payload_text, sig;
  if (!base64url_decode(token.substr(0, dot1), header_text) ||
      !base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1), payload_text) ||
      !base64url_decode(token.substr(dot2 + 1), sig)) {
    return r;
  }
  const json header = parse_json(header_text, options.max_json_depth);
  if (!header.is_object()) return r;
  const auto alg_it = header.find("alg");
  if (alg_it == header.end() || !alg_it->is_string()) return r;
  algorithm alg{};
  if (!parse_algorithm(alg_it->get<std::string>(), alg) || header.contains("crit")) {
    r.err = error::unsupported_alg;
    return r;
  }
  r.alg = alg;
  std::string kid;
  if (const auto k = header.find("kid"); k != header.end()) {
    if (!k->is_string()) return r;
    kid = k->get<std::string>();
  }

  // Candidates: keys allowed to verify this algorithm, with this kid (keys without a kid
  // match any token; a token without a kid tries every key).
  const alg_info& a = info(alg);
  const std::string_view signing_input = token.substr(0, dot2);
  bool any_candidate = false;
  bool verified = false;
  for (const key& k : keys.keys()) {
    if (!(k.algorithms & bit(alg))) continue;
    if (!kid.empty() && !k.kid.empty() && k.kid != kid) continue;
    any_candidate = true;
    if (verify_with(k, a, signing_input, sig)) {
      verified = true;
      break;
    }
  }
  if (!any_candidate) {
    r.err = error::unknown_key;
    return r;
  }
  if (!verified) {
    r.err = error::bad_signature;
    return r;
  }

  json claims = parse_json(payload_text, options.max_json_depth);
  if (!claims.is_object()) return r;
  const std::int64_t leeway = options.leeway.count();
  bool bad = false;
  std::int64_t t = 0;
  const bool has_exp = numeric_claim(claims, "exp", t, bad);
  if (has_exp && now > t + leeway) {
    r.err = error::expired;
    return r;
  }
  if (!has_exp && !bad && options.require_exp) {
    r.err = error::missing_exp;
    return r;
  }
  if (numeric_claim(claims, "nbf", t, bad) && now + leeway < t) {
    r.err = error::not_yet_valid;
    return r;
  }
  if (numeric_claim(claims, "iat", t, bad) && now + leeway < t) {
    r.err = error::issued_in_future;
    return r;
  }
  if (bad) {
    r.err = error::bad_claim;
    return r;
  }
  if (!options.issuer.empty()) {
    const auto iss = claims.find("iss");
    if (iss == claims.end() || !iss->is_string() || *iss != options.issuer) {
      r.err = error::bad_issuer;
      return r;
    }
  }
  if (!options.audience.empty()) {
    bool match = false;
    const auto aud = claims.find("aud");
    const auto accepts = [&](const json& v) {
      if (!v.is_string()) return false;
      for (const auto& want : options.audience) {
        if (v.get<std::string>() == want) return true;
      }
      return false;
    };
    if (aud != claims.end()) {
      if (aud->is_array()) {
        for (const auto& v : *aud)
          match = match || accepts(v);
      } else {
        match = accepts(*aud);
      }
    }
    if (!match) {
      r.err = error::bad_audience;
      return r;
    }
  }
  r.err = error::none;
  r.claims = std::move(claims);
  return r;
}

}  // namespace herald::jwt
