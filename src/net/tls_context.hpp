// The server's TLS settings (certificate, key, versions, ciphers) as an OpenSSL context.
// New connections take the current context; reload() swaps in a new one (e.g. renewed
// certificates) without touching connections that are already open.
#pragma once

#include <memory>
#include <mutex>

#include "herald/config/config.hpp"
#include "net/net.hpp"

namespace herald::net {

// The client listener's TLS settings and certificate, reloadable on SIGHUP.
class tls_context {
 public:
  // Throws config_error naming the key when files or settings are unusable.
  explicit tls_context(const tls_config& cfg);

  std::shared_ptr<ssl::context> current() const;
  // Re-reads the certificate and key. On failure keeps the old context and rethrows.
  void reload();

 private:
  static std::shared_ptr<ssl::context> build(const tls_config& cfg);

  tls_config cfg_;
  mutable std::mutex mutex_;
  std::shared_ptr<ssl::context> current_;
};

}  // namespace herald::net
