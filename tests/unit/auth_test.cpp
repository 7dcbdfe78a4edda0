// JWT verification, token lookup, authorizer answers and upgrade guards, without sockets.
#include <gtest/gtest.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "herald/auth/authenticator.hpp"
#include "herald/auth/jwt.hpp"
#include "herald/auth/upgrade_guard.hpp"
#include "herald/server/startup.hpp"

namespace herald {
namespace {

using jwt::algorithm;
using nlohmann::json;

const std::string kSecret = "0123456789abcdef0123456789abcdef";  // 32 bytes: enough for HS256

std::shared_ptr<EVP_PKEY> rsa_key() {
  static std::shared_ptr<EVP_PKEY> k(EVP_RSA_gen(2048), EVP_PKEY_free);
  return k;
}
std::shared_ptr<EVP_PKEY> ec_key() {
  static std::shared_ptr<EVP_PKEY> k(EVP_EC_gen("P-256"), EVP_PKEY_free);
  return k;
}

std::string public_pem(EVP_PKEY* k) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, k);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

std::string sign_with(EVP_PKEY* k, const EVP_MD* md, const std::string& input) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::size_t len = 0;
  EVP_DigestSignInit(ctx, nullptr, md, nullptr, k);
  EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                 input.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                 reinterpret_cast<const unsigned char*>(input.data()), input.size());
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  return sig;
}

// A signed token: HS* with `secret`, RS256 with the test RSA key, ES256 with the EC key.
// Claims without "exp" get one an hour after kNow (tokens without exp are refused by default),
// unless `add_exp` is false.
std::string make_token(const json& header, json payload, const std::string& secret = kSecret,
                       bool add_exp = true) {
  if (add_exp && payload.is_object() && !payload.contains("exp"))
    payload["exp"] = 1'800'000'000 + 3600;
  const std::string input =
      jwt::base64url_encode(header.dump()) + "." + jwt::base64url_encode(payload.dump());
  const std::string alg = header.value("alg", "none");
  std::string sig;
  if (alg == "HS256" || alg == "HS512") {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(alg == "HS256" ? EVP_sha256() : EVP_sha512(), secret.data(),
         static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(input.data()),
         input.size(), mac, &len);
    sig.assign(reinterpret_cast<char*>(mac), len);
  } else if (alg == "RS256") {
    sig = sign_with(rsa_key().get(), EVP_sha256(), input);
  } else if (alg == "ES256") {
    const std::string der = sign_with(ec_key().get(), EVP_sha256(), input);
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
    unsigned char raw[64];
    BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
    ECDSA_SIG_free(es);
    sig.assign(reinterpret_cast<char*>(raw), 64);
  }
  return input + "." + jwt::base64url_encode(sig);
}

constexpr std::int64_t kNow = 1'800'000'000;

jwt::key_set all_keys() {
  jwt::key_set keys;
  keys.add_secret("hs", algorithm::hs256, kSecret);
  keys.add_public_key_pem("rs", algorithm::rs256, public_pem(rsa_key().get()));
  keys.add_public_key_pem("es", algorithm::es256, public_pem(ec_key().get()));
  return keys;
}

jwt::error verify_err(const std::string& token, const jwt::verify_options& o = {}) {
  static const jwt::key_set keys = all_keys();
  return jwt::verify(token, keys, o, kNow).err;
}

TEST(Jwt, Base64UrlIsStrict) {
  std::string out;
  EXPECT_TRUE(jwt::base64url_decode("aGVsbG8", out));
  EXPECT_EQ(out, "hello");
  EXPECT_FALSE(jwt::base64url_decode("aGVsbG8=", out));  // padding
  EXPECT_FALSE(jwt::base64url_decode("aGV+bG8", out));   // standard alphabet
  EXPECT_FALSE(jwt::base64url_decode("aGVsbG9", out));   // non-zero leftover bits
  EXPECT_FALSE(jwt::base64url_decode("a", out));
  EXPECT_EQ(jwt::base64url_encode("hello?>"), "aGVsbG8_Pg");
}

TEST(Jwt, EachAlgorithmVerifies) {
  const json claims = {{"sub", "u1"}, {"exp", kNow + 60}};
  for (const char* alg : {"HS256", "RS256", "ES256"}) {
    const std::string t = make_token({{"alg", alg}, {"typ", "JWT"}}, claims);
    const auto r = jwt::verify(t, all_keys(), {}, kNow);
    EXPECT_EQ(r.err, jwt::error::none) << alg;
    EXPECT_EQ(r.claims["sub"], "u1") << alg;
  }
}

TEST(Jwt, TimeClaimsWithLeeway) {
  jwt::verify_options o;
  o.leeway = std::chrono::seconds(10);
  const auto t = [](const json& claims) { return make_token({{"alg", "HS256"}}, claims); };
  EXPECT_EQ(verify_err(t({{"exp", kNow - 5}}), o), jwt::error::none);  // within leeway
  EXPECT_EQ(verify_err(t({{"exp", kNow - 11}}), o), jwt::error::expired);
  EXPECT_EQ(verify_err(t({{"nbf", kNow + 5}}), o), jwt::error::none);
  EXPECT_EQ(verify_err(t({{"nbf", kNow + 60}}), o), jwt::error::not_yet_valid);
  EXPECT_EQ(verify_err(t({{"iat", kNow + 60}}), o), jwt::error::issued_in_future);
  EXPECT_EQ(verify_err(t({{"exp", "tomorrow"}}), o), jwt::error::bad_claim);
}

// A token without exp would never expire: refused unless auth.jwt.require_exp is false.
TEST(Jwt, MissingExpIsRefusedByDefault) {
  const std::string t = make_token({{"alg", "HS256"}}, {{"sub", "u"}}, kSecret, false);
  EXPECT_EQ(verify_err(t), jwt::error::missing_exp);
  EXPECT_EQ(jwt::describe(jwt::error::missing_exp), "token has no exp claim");
  jwt::verify_options lenient;
  lenient.require_exp = false;
  EXPECT_EQ(verify_err(t, lenient), jwt::error::none);
}

// Header and claims are parsed with the depth bound: a deep claim is a malformed token.
TEST(Jwt, DeepClaimsAreMalformed) {
  json deep = json::array();
  for (int i = 0; i < 100; ++i)
    deep = json::array({deep});
  EXPECT_EQ(verify_err(make_token({{"alg", "HS256"}}, {{"sub", "u"}, {"x", deep}})),
            jwt::error::malformed);
  json shallow = json::array();
  for (int i = 0; i < 10; ++i)
    shallow = json::array({shallow});
  EXPECT_EQ(verify_err(make_token({{"alg", "HS256"}}, {{"sub", "u"}, {"x", shallow}})),
            jwt::error::none);
}

TEST(Jwt, IssuerAndAudience) {
  jwt::verify_options o;
  o.issuer = "https://issuer.example";
  o.audience = {"herald", "other"};
  const auto t = [](const json& claims) { return make_token({{"alg", "HS256"}}, claims); };
  EXPECT_EQ(verify_err(t({{"iss", "https://issuer.example"}, {"aud", "herald"}}), o),
            jwt::error::none);
  EXPECT_EQ(verify_err(t({{"iss", "https://issuer.example"}, {"aud", {"x", "other"}}}), o),
            jwt::error::none);
  EXPECT_EQ(verify_err(t({{"iss", "https://evil.example"}, {"aud", "herald"}}), o),
            jwt::error::bad_issuer);
  EXPECT_EQ(verify_err(t({{"aud", "herald"}}), o), jwt::error::bad_issuer);
  EXPECT_EQ(verify_err(t({{"iss", "https://issuer.example"}, {"aud", "nope"}}), o),
            jwt::error::bad_audience);
  EXPECT_EQ(verify_err(t({{"iss", "https://issuer.example"}}), o), jwt::error::bad_audience);
}

TEST(Jwt, AlgNoneAndConfusionAreRefused) {
  const json claims = {{"sub", "attacker"}};
  // alg none with an empty signature.
  const std::string none =
      jwt::base64url_encode(R"({"alg":"none"})") + "." + jwt::base64url_encode(claims.dump()) + ".";
  EXPECT_EQ(verify_err(none), jwt::error::unsupported_alg);
  // HS256 signed with the RSA public key's PEM as the secret (the classic confusion attack).
  const std::string pem = public_pem(rsa_key().get());
  EXPECT_EQ(verify_err(make_token({{"alg", "HS256"}, {"kid", "rs"}}, claims, pem)),
            jwt::error::unknown_key);
  EXPECT_EQ(verify_err(make_token({{"alg", "HS256"}}, claims, pem)), jwt::error::bad_signature);
  // A key set with only an RSA key has no candidate for HS256 at all.
  jwt::key_set rsa_only;
  rsa_only.add_public_key_pem("", algorithm::rs256, pem);
  EXPECT_EQ(jwt::verify(make_token({{"alg", "HS256"}}, claims, pem), rsa_only, {}, kNow).err,
            jwt::error::unknown_key);
  // Unknown algorithms and critical extensions.
  EXPECT_EQ(verify_err(make_token({{"alg", "PS256"}}, claims)), jwt::error::unsupported_alg);
  EXPECT_EQ(verify_err(make_token({{"alg", "HS256"}, {"crit", {"exp"}}}, claims)),
            jwt::error::unsupported_alg);
}

TEST(Jwt, SignaturesAndShapes) {
  std::string good = make_token({{"alg", "HS256"}}, {{"sub", "u"}});
  EXPECT_EQ(verify_err(good), jwt::error::none);
  std::string tampered = good;
  tampered[tampered.find('.') + 2] ^= 1;  // payload changed after signing
  EXPECT_NE(verify_err(tampered), jwt::error::none);
  EXPECT_EQ(verify_err(
                make_token({{"alg", "HS256"}}, {{"sub", "u"}}, "another-secret-of-32-bytes-.....")),
            jwt::error::bad_signature);
  EXPECT_EQ(verify_err("a.b"), jwt::error::malformed);
  EXPECT_EQ(verify_err("a.b.c.d"), jwt::error::malformed);
  EXPECT_EQ(verify_err(""), jwt::error::malformed);
  EXPECT_EQ(verify_err(jwt::base64url_encode("[1]") + ".e30.AA"), jwt::error::malformed);
  // kid selects the key; an unknown kid has no candidate.
  EXPECT_EQ(verify_err(make_token({{"alg", "HS256"}, {"kid", "hs"}}, {{"sub", "u"}})),
            jwt::error::none);
  EXPECT_EQ(verify_err(make_token({{"alg", "HS256"}, {"kid", "gone"}}, {{"sub", "u"}})),
            jwt::error::unknown_key);
  // ES256 with a DER (not JOSE) signature is refused.
  const std::string input =
      jwt::base64url_encode(R"({"alg":"ES256"})") + "." + jwt::base64url_encode(R"({"a":1})");
  const std::string der = sign_with(ec_key().get(), EVP_sha256(), input);
  EXPECT_EQ(verify_err(input + "." + jwt::base64url_encode(der)), jwt::error::bad_signature);
}

TEST(Jwt, KeysAreCheckedWhenAdded) {
  jwt::key_set keys;
  EXPECT_THROW(keys.add_secret("", algorithm::hs256, "short"), std::invalid_argument);
  EXPECT_THROW(keys.add_secret("", algorithm::rs256, kSecret), std::invalid_argument);
  EXPECT_THROW(keys.add_public_key_pem("", algorithm::hs256, public_pem(rsa_key().get())),
               std::invalid_argument);
  EXPECT_THROW(keys.add_public_key_pem("", algorithm::es256, public_pem(rsa_key().get())),
               std::invalid_argument);
  EXPECT_THROW(keys.add_public_key_pem("", algorithm::rs256, "not a pem"), std::invalid_argument);
  EXPECT_TRUE(keys.empty());
}

TEST(Jwt, JwksDocuments) {
  // The RSA key as a JWK.
  BIGNUM* n = nullptr;
  BIGNUM* e = nullptr;
  EVP_PKEY_get_bn_param(rsa_key().get(), "n", &n);
  EVP_PKEY_get_bn_param(rsa_key().get(), "e", &e);
  const auto bn = [](BIGNUM* b) {
    std::string s(static_cast<std::size_t>(BN_num_bytes(b)), '\0');
    BN_bn2bin(b, reinterpret_cast<unsigned char*>(s.data()));
    BN_free(b);
    return jwt::base64url_encode(s);
  };
  const json jwks = {{"keys",
                      {{{"kty", "RSA"}, {"kid", "r1"}, {"use", "sig"}, {"n", bn(n)}, {"e", bn(e)}},
                       {{"kty", "oct"}, {"kid", "o1"}, {"k", jwt::base64url_encode(kSecret)}},
                       {{"kty", "RSA"}, {"use", "enc"}, {"n", "AQAB"}, {"e", "AQAB"}},
                       {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", "AA"}}}}};
  jwt::key_set keys;
  EXPECT_EQ(keys.add_jwks(jwks.dump()), 2u);
  const json claims = {{"sub", "u"}};
  EXPECT_EQ(jwt::verify(make_token({{"alg", "RS256"}, {"kid", "r1"}}, claims), keys, {}, kNow).err,
            jwt::error::none);
  EXPECT_EQ(jwt::verify(make_token({{"alg", "HS256"}, {"kid", "o1"}}, claims), keys, {}, kNow).err,
            jwt::error::none);
  EXPECT_THROW(keys.add_jwks(R"({"keys":[]})"), std::invalid_argument);
  EXPECT_THROW(keys.add_jwks("[]"), std::invalid_argument);
  EXPECT_THROW(keys.add_jwks(R"({"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]})"),
               std::invalid_argument);
  // Members of the wrong JSON type are a clear error naming the key, never another exception
  // (found by fuzz_jwt: "crv" as an object).
  for (const char* bad : {R"({"keys":[{"kty":"EC","crv":{"keys":[]},"x":"AA","y":"AA"}]})",
                          R"({"keys":[{"kty":7,"k":"a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tr"}]})",
                          R"({"keys":[{"kty":"oct","kid":[],"k":"a2tra2tra2tra2tra2tra2tr"}]})"}) {
    try {
      keys.add_jwks(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const std::invalid_argument& error) {
      EXPECT_NE(std::string(error.what()).find("keys[0]: \""), std::string::npos) << error.what();
    }
  }
}

TEST(Auth, TokenSourcesInOrderAndTheSubprotocolNeverStays) {
  jwt_config c;
  connect_request req;
  req.target = "/?access_token=from-query&x=1";
  req.headers = {{"Authorization", "Bearer from-header"}};
  std::vector<std::string> offered{"chat.v1", "bearer.from-protocol"};
  EXPECT_EQ(find_token(c, req, offered).value(), "from-header");
  EXPECT_EQ(offered, std::vector<std::string>{"chat.v1"});
  c.token_sources = {"subprotocol", "query"};
  offered = {"bearer.from-protocol", "chat.v1"};
  EXPECT_EQ(find_token(c, req, offered).value(), "from-protocol");
  c.token_sources = {"query"};
  offered = {"bearer.x"};
  EXPECT_EQ(find_token(c, req, offered).value(), "from-query");
  EXPECT_TRUE(offered.empty());
  req.target = "/";
  EXPECT_FALSE(find_token(c, req, offered).has_value());
  c.token_sources = {"header"};
  req.headers = {{"authorization", "Basic abc"}};
  EXPECT_FALSE(find_token(c, req, offered).has_value());
}

TEST(Auth, ClaimsBecomeTheAuthorizerContext) {
  const json claims = {{"sub", "u1"}, {"channels", {"orders.42", "news.*"}}, {"admin", true}};
  const auto ctx = claims_context(claims, "u1");
  ASSERT_EQ(ctx.front(), (std::pair<std::string, std::string>{"principalId", "u1"}));
  EXPECT_NE(std::find(ctx.begin(), ctx.end(),
                      std::pair<std::string, std::string>{"channels", R"(["orders.42","news.*"])"}),
            ctx.end());
  EXPECT_NE(std::find(ctx.begin(), ctx.end(), std::pair<std::string, std::string>{"admin", "true"}),
            ctx.end());
}

TEST(Auth, AuthorizerAnswers) {
  using v = authorizer_answer::verdict;
  const std::string arn = "arn:aws:execute-api:local:000000000000:herald/default/$connect";
  const auto allow = [](const std::string& resource) {
    return json{
        {"principalId", "user-7"},
        {"policyDocument",
         {{"Version", "2012-10-17"},
          {"Statement",
           {{{"Action", "execute-api:Invoke"}, {"Effect", "Allow"}, {"Resource", resource}}}}}},
        {"context", {{"tier", "gold"}, {"n", 1}, {"ok", true}}}}
        .dump();
  };
  auto a = parse_authorizer_answer(200, allow(arn), arn, 64);
  EXPECT_EQ(a.what, v::allow);
  EXPECT_EQ(a.principal_id, "user-7");
  EXPECT_EQ(a.context, (string_pairs{{"n", "1"}, {"ok", "true"}, {"tier", "gold"}}));
  EXPECT_EQ(parse_authorizer_answer(200, allow("arn:aws:execute-api:*"), arn, 64).what, v::allow);
  EXPECT_EQ(parse_authorizer_answer(200, allow("arn:aws:execute-api:x:1:other/*"), arn, 64).what,
            v::deny);
  const std::string deny = R"({"principalId":"u","policyDocument":{"Statement":[
      {"Action":"execute-api:Invoke","Effect":"Allow","Resource":"*"},
      {"Action":"execute-api:Invoke","Effect":"Deny","Resource":"*"}]}})";
  EXPECT_EQ(parse_authorizer_answer(200, deny, arn, 64).what, v::deny);
  EXPECT_EQ(parse_authorizer_answer(401, "", arn, 64).what, v::unauthorized);
  EXPECT_EQ(parse_authorizer_answer(403, "", arn, 64).what, v::deny);
  EXPECT_EQ(parse_authorizer_answer(404, "", arn, 64).what, v::error);
  EXPECT_EQ(parse_authorizer_answer(200, "not json", arn, 64).what, v::error);
  EXPECT_EQ(parse_authorizer_answer(200, R"({"principalId":"u"})", arn, 64).what, v::error);
  EXPECT_EQ(parse_authorizer_answer(
                200, R"({"policyDocument":{"Statement":[]},"context":{"o":{"x":1}}})", arn, 64)
                .what,
            v::error);
  EXPECT_EQ(parse_authorizer_answer(200, std::string(9000, ' '), arn, 64).what, v::error);
  // Nested deeper than the bound: an unusable answer (a 500 at the handshake), not a crash.
  const std::string deep =
      R"({"principalId":"u","x":)" + std::string(4000, '[') + std::string(4000, ']') + "}";
  a = parse_authorizer_answer(200, deep, arn, 64);
  EXPECT_EQ(a.what, v::error);
  EXPECT_EQ(a.error, "authorizer result: JSON nested deeper than 64 levels");
}

TEST(AuthConfig, BadKeysAndAuthorizersNameTheKey) {
  const auto error_of = [](const std::string& text) -> std::string {
    try {
      check_components(load_config({"", text, {}, {}}));
    } catch (const config_error& e) {
      return e.key();
    }
    return "";
  };
  EXPECT_EQ(error_of(R"({"auth":{"jwt":{"keys":[{"alg":"none","secret":"x"}]}}})"),
            "auth.jwt.keys[0].alg");
  EXPECT_EQ(error_of(R"({"auth":{"jwt":{"keys":[{"alg":"HS256","secret":"short"}]}}})"),
            "auth.jwt.keys[0]");
  EXPECT_EQ(error_of(R"({"auth":{"jwt":{"keys":[{"alg":"HS256"}]}}})"), "auth.jwt.keys[0]");
  EXPECT_EQ(
      error_of(
          R"({"auth":{"jwt":{"keys":[{"alg":"HS256","secret_env":"HERALD_TEST_UNSET_VAR"}]}}})"),
      "auth.jwt.keys[0].secret_env");
  EXPECT_EQ(
      error_of(
          R"({"auth":{"jwt":{"keys":[{"alg":"RS256","public_key_file":"/nonexistent.pem"}]}}})"),
      "auth.jwt.keys[0].public_key_file");
  EXPECT_EQ(error_of(R"({"auth":{"jwt":{"jwks_file":"/nonexistent.json"}}})"),
            "auth.jwt.jwks_file");
  EXPECT_EQ(error_of(R"({"auth":{"jwt":{"keys":[{"alg":"HS256","secret":")" + kSecret +
                     R"("}],"token_sources":["cookie"]}}})"),
            "auth.jwt.token_sources");
  EXPECT_EQ(error_of(R"({"auth":{"jwt":{"close_on_expiry":true}}})"), "auth.jwt.close_on_expiry");
  EXPECT_EQ(error_of(R"({"auth":{"authorizer":{"integration":"echo"}}})"),
            "auth.authorizer.integration");
  EXPECT_EQ(error_of(R"({"integrations":{"a":{"type":"http","url":"http://127.0.0.1:1/"}},
                        "auth":{"authorizer":{"integration":"a","identity_sources":["header.X"]}}})"),
            "auth.authorizer.identity_sources");
  EXPECT_EQ(
      error_of(R"({"auth":{"jwt":{"keys":[{"alg":"HS256","secret":")" + kSecret + R"("}]}}})"), "");
}

TEST(UpgradeGuard, Origins) {
  EXPECT_TRUE(origin_allowed({}, "https://anything.example"));
  const std::vector<std::string> allowed{"https://app.example.com", "https://*.example.org"};
  EXPECT_TRUE(origin_allowed(allowed, ""));  // not a browser
  EXPECT_TRUE(origin_allowed(allowed, "https://app.example.com"));
  EXPECT_TRUE(origin_allowed(allowed, "HTTPS://App.Example.com"));
  EXPECT_TRUE(origin_allowed(allowed, "https://a.example.org"));
  EXPECT_FALSE(origin_allowed(allowed, "https://app.example.com.evil.net"));
  EXPECT_FALSE(origin_allowed(allowed, "http://app.example.com"));
  EXPECT_FALSE(origin_allowed(allowed, "null"));
}

TEST(UpgradeGuard, PerAddressRateAndConcurrency) {
  using clock = ip_limiter::clock;
  per_ip_config c;
  c.connect_rate = 2;
  c.connect_burst = 3;
  c.max_connections = 4;
  ip_limiter lim(c, 2);
  const auto t0 = clock::now();
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(lim.admit("10.0.0.1", t0), ip_limiter::verdict::ok);
  EXPECT_EQ(lim.admit("10.0.0.1", t0), ip_limiter::verdict::rate);
  EXPECT_EQ(lim.admit("10.0.0.2", t0), ip_limiter::verdict::ok);  // others are unaffected
  // Half a second refills one token at 2/s.
  EXPECT_EQ(lim.admit("10.0.0.1", t0 + std::chrono::milliseconds(500)), ip_limiter::verdict::ok);
  // Four open: the concurrency cap, whatever the bucket says.
  EXPECT_EQ(lim.admit("10.0.0.1", t0 + std::chrono::seconds(10)), ip_limiter::verdict::concurrent);
  lim.release("10.0.0.1");
  EXPECT_EQ(lim.admit("10.0.0.1", t0 + std::chrono::seconds(10)), ip_limiter::verdict::ok);
  // Idle, refilled addresses are forgotten once more than max_tracked are known.
  lim.release("10.0.0.2");
  EXPECT_EQ(lim.admit("10.0.0.3", t0 + std::chrono::seconds(20)), ip_limiter::verdict::ok);
  EXPECT_EQ(lim.tracked(), 2u);  // 10.0.0.2 went; 10.0.0.1 still has four open
}

}  // namespace
}  // namespace herald
