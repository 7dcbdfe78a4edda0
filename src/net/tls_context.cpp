#include "net/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace herald::net {
namespace {

std::string openssl_error() {
  const unsigned long code = ERR_get_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

}  // namespace

tls_context::tls_context(const tls_config& cfg) : cfg_(cfg), current_(build(cfg)) {}

std::shared_ptr<ssl::context> tls_context::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

void tls_context::reload() {
  auto fresh = build(cfg_);
  std::lock_guard lock(mutex_);
  current_ = std::move(fresh);
}

std::shared_ptr<ssl::context> tls_context::build(const tls_config& cfg) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  const int min = cfg.min_version == tls_version::v1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
  SSL_CTX_set_min_proto_version(native, min);
  // No renegotiation, no compression (CRIME), server picks the cipher order.
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                  SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
  // Idle TLS connections give their read/write buffers back to the allocator.
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
  if (!cfg.ciphers.empty() && SSL_CTX_set_cipher_list(native, cfg.ciphers.c_str()) != 1) {
    throw config_error("tls.ciphers", "OpenSSL rejected the cipher list: " + openssl_error());
  }
  if (!cfg.ciphersuites.empty() &&
      SSL_CTX_set_ciphersuites(native, cfg.ciphersuites.c_str()) != 1) {
    throw config_error("tls.ciphersuites", "OpenSSL rejected the suites: " + openssl_error());
  }
  if (SSL_CTX_use_certificate_chain_file(native, cfg.cert_file.c_str()) != 1) {
    throw config_error("tls.cert_file", "cannot load certificate chain \"" + cfg.cert_file +
                                            "\": " + openssl_error());
  }
  if (SSL_CTX_use_PrivateKey_file(native, cfg.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw config_error("tls.key_file",
                       "cannot load private key \"" + cfg.key_file + "\": " + openssl_error());
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    throw config_error("tls.key_file", "the private key does not match tls.cert_file");
  }
  return ctx;
}

}  // namespace herald::net
