#include "net/tls_context.hpp"

#include <array>
#include <fstream>
#include <string>

#include <openssl/crypto.h>
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

// Resumption. With tickets, the session travels encrypted in the ticket and the node keeps
// nothing (its session cache is off: it would hold every full handshake's session, ~1 KiB
// each, for clients that may never come back); one ticket per handshake (OpenSSL sends two,
// each costing an encryption and ~250 bytes on the wire). TLS 1.3 resumes with a fresh ECDHE
// exchange (psk_dhe_ke), so a leaked ticket key does not expose resumed sessions' traffic.
// Without tickets, OpenSSL's per-node session cache (TLS 1.2 session ids, TLS 1.3 stateful
// tickets).
void set_up_resumption(SSL_CTX* ctx, const tls_config& cfg) {
  if (!cfg.session_tickets) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    return;
  }
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 1);
  if (cfg.ticket_key_file.empty()) return;  // OpenSSL's random key, per context
  std::ifstream in(cfg.ticket_key_file, std::ios::binary);
  if (!in) {
    throw config_error("tls.ticket_key_file", "cannot read \"" + cfg.ticket_key_file + "\"");
  }
  std::array<unsigned char, 81> key{};
  in.read(reinterpret_cast<char*>(key.data()), key.size());
  const auto size = in.gcount();
  const bool set = size == 80 && SSL_CTX_set_tlsext_ticket_keys(ctx, key.data(), 80) == 1;
  OPENSSL_cleanse(key.data(), key.size());  // OpenSSL keeps its own copy
  if (size != 80) {
    throw config_error("tls.ticket_key_file",
                       "must hold exactly 80 bytes (openssl rand 80 > FILE), not " +
                           std::to_string(size) + (size == 81 ? " or more" : ""));
  }
  if (!set)
    throw config_error("tls.ticket_key_file", "OpenSSL rejected the key: " + openssl_error());
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
  SSL_CTX_set_options(
      native, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  set_up_resumption(native, cfg);
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
