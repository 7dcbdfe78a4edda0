#include <algorithm>
#include <cctype>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "herald/common/text.hpp"
#include "herald/delivery/backplane.hpp"
#include "herald/integrations/integration.hpp"
#include "herald/protocol/client_frames.hpp"
#include "herald/ws/handshake.hpp"

namespace herald {
namespace {

// Sends the message straight back.
class echo_integration final : public integration {
 public:
  bool wants_event() const override { return false; }
  void invoke(const invocation& inv, integration_callback done) override {
    integration_result r;
    r.has_body = true;
    if (inv.body_base64) {
      // A binary frame (delivered base64-encoded) goes back as the same bytes.
      r.body = ws::base64_decode(inv.body).value_or(std::string());
      r.binary = true;
    } else {
      r.body = std::string(inv.body);
    }
    done(std::move(r));
  }
};

// Answers every call the same way: handy for tests, demos and a $connect that rejects.
class mock_integration final : public integration {
 public:
  explicit mock_integration(const integration_config& cfg) : cfg_(cfg) {}
  bool wants_event() const override { return false; }
  void invoke(const invocation&, integration_callback done) override {
    integration_result r;
    r.status = cfg_.status;
    r.headers = cfg_.response_headers;
    r.body = cfg_.body;
    r.has_body = !r.body.empty();
    done(std::move(r));
  }

 private:
  const integration_config cfg_;
};

// Store-first: the event goes into a Redis stream; the client is acknowledged as soon as Redis
// has it, and workers (consumer groups) process it and push results back.
class stream_integration final : public integration {
 public:
  stream_integration(const integration_config& cfg, const std::string& key_prefix,
                     backplane& backplane, worker_poster post)
      : cfg_(cfg), prefix_(key_prefix + ":queue:"), backplane_(backplane), post_(std::move(post)) {}

  void invoke(const invocation& inv, integration_callback done) override {
    const std::string key =
        cfg_.stream.empty() ? prefix_ + std::string(inv.route_key) : cfg_.stream;
    std::vector<std::pair<std::string, std::string>> fields{
        {"event", std::string(inv.event)},
        {"connectionId", std::string(inv.connection_id)},
        {"routeKey", std::string(inv.route_key)},
        {"requestId", std::string(inv.request_id)}};
    backplane_.append_stream(key, std::move(fields), cfg_.max_length,
                             [this, worker = inv.worker, request_id = std::string(inv.request_id),
                              done = std::move(done)](bool ok, std::string id) mutable {
                               integration_result r;
                               r.ack = true;
                               r.has_body = true;
                               if (ok) {
                                 r.body = protocol::stored_ack(request_id, id);
                               } else {
                                 r.ok = false;
                                 r.status = 503;
                                 r.error = "stream append failed: " + id;
                                 r.body = protocol::not_stored(request_id);
                               }
                               post_(worker, [r = std::move(r), done = std::move(done)]() mutable {
                                 done(std::move(r));
                               });
                             });
  }

 private:
  const integration_config cfg_;
  const std::string prefix_;
  backplane& backplane_;
  worker_poster post_;
};

}  // namespace

std::unique_ptr<integration> make_stream_integration(const integration_config& cfg,
                                                     const std::string& key_prefix,
                                                     backplane& backplane, worker_poster post) {
  return std::make_unique<stream_integration>(cfg, key_prefix, backplane, std::move(post));
}

std::unique_ptr<integration> make_builtin_integration(const integration_config& cfg) {
  switch (cfg.kind) {
    case integration_kind::echo:
      return std::make_unique<echo_integration>();
    case integration_kind::mock:
      return std::make_unique<mock_integration>(cfg);
    case integration_kind::http:
    case integration_kind::redis_stream:
      break;
  }
  throw std::logic_error("not a built-in integration: " + cfg.name);
}

}  // namespace herald
