// Tokens as an attacker sends them, against a key set with an HMAC secret and an EC key.
#include <string>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "herald/auth/jwt.hpp"

namespace {

herald::jwt::key_set make_keys() {
  herald::jwt::key_set keys;
  keys.add_secret("hs", herald::jwt::algorithm::hs256, "fuzzing-secret-0123456789abcdef!");
  EVP_PKEY* ec = EVP_EC_gen("P-256");
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, ec);
  char* pem = nullptr;
  const long n = BIO_get_mem_data(bio, &pem);
  keys.add_public_key_pem("es", herald::jwt::algorithm::es256,
                          std::string_view(pem, static_cast<std::size_t>(n)));
  BIO_free(bio);
  EVP_PKEY_free(ec);
  return keys;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace herald::jwt;
  static const key_set keys = make_keys();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  verify_options o;
  o.issuer = "https://issuer";
  o.audience = {"herald"};
  verify(text, keys, o, 1'800'000'000);
  // Header and payload parts built from the input, so the JSON paths are reached too.
  const auto cut = text.find('|');
  if (cut != std::string_view::npos) {
    const std::string token = base64url_encode(text.substr(0, cut)) + "." +
                              base64url_encode(text.substr(cut + 1)) + ".AAAA";
    verify(token, keys, o, 1'800'000'000);
  }
  std::string out;
  if (base64url_decode(text, out) && base64url_encode(out) != text) __builtin_trap();
  try {
    key_set k;
    k.add_jwks(text);
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
