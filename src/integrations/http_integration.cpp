#include "integrations/http_integration.hpp"

#include <boost/asio/ssl/context.hpp>
#include <nlohmann/json.hpp>

#include "herald/ws/handshake.hpp"
#include "integrations/http_client.hpp"

namespace herald::net {
namespace {

using nlohmann::json;

// Posts events to an HTTP backend and reads its answer (plain or Lambda proxy).
class http_integration final : public integration {
 public:
  http_integration(const integration_config& cfg, const std::vector<asio::io_context*>& workers,
                   std::size_t max_json_depth)
      : cfg_(cfg), max_json_depth_(max_json_depth) {
    auto url = parse_url(cfg.url);
    if (!url)
      throw config_error("integrations." + cfg.name + ".url", "cannot parse \"" + cfg.url + "\"");
    http_client::options o;
    o.url = *url;
    o.timeout = cfg.timeout;
    o.connect_timeout = cfg.connect_timeout;
    o.keepalive_timeout = cfg.keepalive_timeout;
    const std::size_t n = workers.size();
    // The configured bounds are for the whole node; each worker gets its share.
    o.max_connections = std::max<std::size_t>(1, (cfg.max_concurrency + n - 1) / n);
    o.max_pending = (cfg.max_pending + n - 1) / n;
    o.max_response_bytes = cfg.max_response_bytes;
    if (url->tls) {
      auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
      ctx->set_default_verify_paths();
      if (!cfg.ca_file.empty()) {
        error_code ec;
        ctx->load_verify_file(cfg.ca_file, ec);
        if (ec)
          throw config_error("integrations." + cfg.name + ".ca_file",
                             "cannot load: " + ec.message());
      }
      ctx->set_verify_mode(cfg.tls_verify ? ssl::verify_peer : ssl::verify_none);
      o.tls = std::move(ctx);
    }
    for (auto* ioc : workers)
      clients_.push_back(std::make_shared<http_client>(*ioc, o));
  }

  void invoke(const invocation& inv, integration_callback done) override {
    string_pairs headers = cfg_.headers;
    headers.emplace_back("X-Herald-Connection-Id", std::string(inv.connection_id));
    headers.emplace_back("X-Herald-Route-Key", std::string(inv.route_key));
    headers.emplace_back("X-Herald-Event-Type", std::string(to_string(inv.type)));
    headers.emplace_back("X-Herald-Request-Id", std::string(inv.request_id));
    clients_[inv.worker]->post(
        std::string(inv.event), std::move(headers),
        [mode = cfg_.mode, depth = max_json_depth_, done = std::move(done)](std::string_view error,
                                                                            client_response res) {
          if (!error.empty()) return done(integration_result::failure(std::string(error)));
          done(interpret_http_answer(mode, static_cast<int>(res.status), std::move(res.headers),
                                     std::move(res.body), depth));
        });
  }

 private:
  const integration_config cfg_;
  const std::size_t max_json_depth_;
  std::vector<std::shared_ptr<http_client>> clients_;
};

}  // namespace

std::unique_ptr<integration> make_http_integration(const integration_config& cfg,
                                                   const std::vector<asio::io_context*>& workers,
                                                   std::size_t max_json_depth) {
  return std::make_unique<http_integration>(cfg, workers, max_json_depth);
}

}  // namespace herald::net
