#include "herald/server/server.hpp"

#include <sys/resource.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstring>
#include <thread>

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "admin/admin_api.hpp"
#include "herald/auth/authenticator.hpp"
#include "herald/auth/upgrade_guard.hpp"
#include "herald/delivery/connection_registry.hpp"
#include "herald/routing/router.hpp"
#include "herald/server/startup.hpp"
#include "herald/ws/frame.hpp"
#include "integrations/http_integration.hpp"
#include "net/http_handler.hpp"
#include "net/listener.hpp"
#include "net/server_context.hpp"
#include "net/sse_session.hpp"
#include "net/static_files.hpp"
#include "net/tls_context.hpp"
#include "net/worker.hpp"
#include "redis/redis_backplane.hpp"

namespace herald {

using namespace net;

namespace {

std::string_view tls_mode_name(tls_mode m) {
  switch (m) {
    case tls_mode::off:
      return "off";
    case tls_mode::auto_detect:
      return "auto";
    case tls_mode::required:
      return "required";
  }
  return "off";
}

// Raises the soft descriptor limit to the hard one (as servers commonly do) and returns how many
// WebSocket connections fit: websocket.max_connections, or fewer when the limit leaves less after
// a reserve for everything else a node needs descriptors for (listeners, Redis, backend
// connections, health checks, and the 503 answers to upgrades over the limit). Said at start-up.
std::size_t descriptor_budget(const config& cfg, logger& log) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return cfg.websocket.max_connections;
  const rlim_t before = rl.rlim_cur;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    // "unlimited" hard limits are capped by the kernel's nr_open; 1 Mi is what most allow.
    raised.rlim_cur = rl.rlim_max == RLIM_INFINITY ? rlim_t{1} << 20 : rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  std::size_t reserve = 64;
  for (const auto& ic : cfg.integrations) {
    if (ic.kind == integration_kind::http) reserve += ic.max_concurrency;
  }
  const std::size_t limit = rl.rlim_cur == RLIM_INFINITY ? std::size_t{1} << 20 : rl.rlim_cur;
  const std::size_t fits = limit > reserve + 1 ? limit - reserve : 1;
  const std::size_t budget = std::min(cfg.websocket.max_connections, fits);
  log.info("server.descriptors", {{"limit", limit},
                                  {"raisedFrom", static_cast<std::uint64_t>(before)},
                                  {"reserve", reserve},
                                  {"maxConnections", budget}});
  if (budget < cfg.websocket.max_connections) {
    log.warn("server.descriptor_limit",
             {{"limit", limit},
              {"reserve", reserve},
              {"maxConnections", budget},
              {"configured", cfg.websocket.max_connections},
              {"hint",
               "websocket.max_connections is more than the descriptor limit (RLIMIT_NOFILE) "
               "allows: upgrades beyond maxConnections are answered 503 with Retry-After; raise "
               "the limit (ulimit -n, LimitNOFILE=, --ulimit nofile=) to hold more"}});
  }
  return budget;
}

unsigned worker_count(const config& cfg) {
  if (cfg.threads != 0) return cfg.threads;
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

std::string generate_node_id() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::strcpy(host, "herald");
  std::string name;
  for (const char* p = host; *p && name.size() < 48; ++p) {
    const char c = *p;
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    name += ok ? c : '-';
  }
  unsigned char raw[6];
  random_bytes(raw, sizeof raw);
  return name + "-" + base64url_encode(raw, sizeof raw).substr(0, 6);
}

// Every component of the node, in construction order.
struct server::impl {
  impl(const config& c, logger& l)
      : cfg(c),
        log(l),
        ctx(cfg, log, registry),
        files(cfg.http.static_dir.empty()
                  ? nullptr
                  : std::make_unique<static_files>(cfg.http.static_dir, nullptr)) {}

  const config& cfg;
  logger& log;
  connection_registry registry;
  server_context ctx;
  // Declared after ctx: destroyed first, while the workers' io_contexts still exist.
  // The backplane is built first (the dispatcher reports to it) and destroyed first (its thread
  // delivers into the dispatcher until it stops).
  std::unique_ptr<herald::dispatcher> dispatcher;
  std::unique_ptr<herald::backplane> backplane;
  std::unique_ptr<herald::router> router;
  std::unique_ptr<authenticator> auth;
  std::unique_ptr<ip_limiter> ip_limits;
  std::unique_ptr<admin_api> admin;
  std::unique_ptr<static_files> files;  // http.static_dir, after the health endpoints
  // The client listener: health, readiness, @connections (admin.client_listener_connections),
  // files.
  std::unique_ptr<client_connections_handler> client_connections;
  std::unique_ptr<health_handler> client_health;
  std::unique_ptr<health_handler> admin_health;  // the admin listener: health, then the admin API
  std::shared_ptr<listener> client_listener;
  std::shared_ptr<listener> admin_listener;
  std::optional<asio::steady_timer> drain_timer;
  steady_clock::time_point stop_started;
  std::atomic<bool> stopping{false};
  std::optional<asio::signal_set> signals;
  std::optional<asio::signal_set> hangup;

  // SIGHUP: re-read the TLS certificate and key and the JWT keys. Open connections keep what
  // they negotiated; new ones get the new material. A failed reload keeps the old one.
  void arm_hangup() {
    hangup->async_wait([this](error_code ec, int) {
      if (ec) return;
      if (ctx.tls) {
        try {
          ctx.tls->reload();
          log.info("tls.reloaded", {{"cert_file", cfg.tls.cert_file}});
        } catch (const std::exception& e) {
          log.error("tls.reload_failed", {{"error", e.what()}});
        }
      }
      if (auth && cfg.auth.jwt.enabled()) {
        try {
          const std::size_t n = auth->reload();
          log.info("auth.keys_reloaded", {{"keys", static_cast<std::uint64_t>(n)}});
        } catch (const std::exception& e) {
          log.error("auth.keys_reload_failed", {{"error", e.what()}});
        }
      }
      arm_hangup();
    });
  }

  // First SIGINT/SIGTERM: graceful stop. Second: immediate.
  void arm_signals(server& srv) {
    signals->async_wait([this, &srv](error_code ec, int signo) {
      if (ec) return;
      if (!stopping.load()) {
        log.info("server.signal", {{"signal", signo}, {"action", "graceful_stop"}});
        begin_stop();
        arm_signals(srv);
      } else {
        log.warn("server.signal", {{"signal", signo}, {"action", "immediate_stop"}});
        srv.stop_now();
      }
    });
  }

  worker& control() { return *ctx.workers.front(); }

  // Graceful stop, in three phases counted from the signal:
  //  1. /readyz answers 503 at once; the listener still accepts for shutdown.accept_delay, the
  //     time a load balancer needs to see it and stop sending new connections here;
  //  2. the client listener closes, upgrades are refused, and every open connection gets a
  //     1001 close at a random moment of shutdown.close_window (clients reconnect elsewhere,
  //     spread out instead of all at once); $disconnect runs for each;
  //  3. once connections and integration calls ($disconnect) are done, or at
  //     shutdown.drain_timeout, the admin listener closes, the node leaves the cluster and
  //     the process exits 0.
  void begin_stop() {
    if (stopping.exchange(true)) return;
    ctx.draining = true;
    stop_started = steady_clock::now();
    const auto& s = cfg.shutdown;
    log.info("server.stopping", {{"connections", registry.size()},
                                 {"accept_delay_ms", millis(s.accept_delay)},
                                 {"close_window_ms", millis(s.close_window)},
                                 {"drain_timeout_ms", millis(s.drain_timeout)}});
    drain_timer.emplace(control().context());
    if (s.accept_delay <= duration::zero()) return begin_closing();
    drain_timer->expires_after(s.accept_delay);
    drain_timer->async_wait([this](error_code ec) {
      if (ec) return;
      begin_closing();
    });
  }

  void begin_closing() {
    ctx.closing = true;
    client_listener->stop();
    log.info("server.draining", {{"connections", registry.size()},
                                 {"close_window_ms", millis(cfg.shutdown.close_window)}});
    for (auto& w : ctx.workers) {
      asio::post(w->context(), [&w, window = cfg.shutdown.close_window] {
        w->drain(window, ws::close_code::going_away, std::string(drain_close_reason));
      });
    }
    wait_for_drain(stop_started + cfg.shutdown.drain_timeout);
  }

  template <class Rep, class Period>
  static std::int64_t millis(std::chrono::duration<Rep, Period> d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  }

  void wait_for_drain(steady_clock::time_point deadline) {
    // Done when every connection is gone and every integration call ($disconnect included)
    // has finished, or at the deadline.
    if ((registry.size() == 0 && router->inflight() == 0) || steady_clock::now() >= deadline) {
      log.info("server.stopped", {{"connections_left", registry.size()},
                                  {"duration_ms", millis(steady_clock::now() - stop_started)}});
      if (admin_listener) admin_listener->stop();
      // Leave the cluster (liveness key), then stop the workers (from this worker's thread).
      backplane->stop([this] {
        asio::post(control().context(), [this] {
          for (auto& w : ctx.workers)
            w->stop();
        });
      });
      return;
    }
    drain_timer->expires_after(std::chrono::milliseconds(20));
    drain_timer->async_wait([this, deadline](error_code ec) {
      if (!ec) wait_for_drain(deadline);
    });
  }
};

namespace {

// The configuration, once checked against the components (before anything is built from it).
const config& checked(const config& cfg) {
  check_components(cfg);
  return cfg;
}

}  // namespace

server::server(const config& cfg, logger& log) : impl_(std::make_unique<impl>(checked(cfg), log)) {
  auto& ctx = impl_->ctx;
  ctx.connection_limit = descriptor_budget(cfg, log);
  ctx.serves_files = impl_->files != nullptr;
  if (cfg.tls.mode != tls_mode::off) ctx.tls = std::make_shared<tls_context>(cfg.tls);
  const unsigned n = worker_count(cfg);
  for (unsigned i = 0; i < n; ++i)
    ctx.workers.push_back(std::make_unique<worker>(i, ctx));
  for (const auto& p : cfg.http.trusted_proxies)
    ctx.trusted_proxies.push_back(*cidr::parse(p));

  // Integrations the routes use, each built once; http ones keep a pool per worker.
  std::vector<asio::io_context*> contexts;
  for (auto& w : ctx.workers)
    contexts.push_back(&w->context());
  router::integration_map integrations;
  std::vector<std::string> used;
  for (const auto& r : cfg.routes)
    used.push_back(r.integration);
  for (const auto& rule : cfg.channels.rules) {
    if (rule.access == channel_access::integration) used.push_back(rule.integration);
  }
  if (!cfg.auth.authorizer.integration.empty()) used.push_back(cfg.auth.authorizer.integration);
  const worker_poster post = [&ctx](unsigned i, std::function<void()> fn) {
    ctx.workers[i]->post(std::move(fn));
  };
  // The one place that picks the backplane; everything else gets the interface.
  const delivery deliver = [this](publication p) {
    impl_->dispatcher->deliver_from_cluster(std::move(p));
  };
  if (cfg.backplane == backplane_kind::redis) {
    impl_->backplane = redis::make_redis_backplane(cfg, log, impl_->registry, deliver, post);
  } else {
    impl_->backplane = make_local_backplane(cfg, deliver, post);
  }
  herald::backplane& backplane = *impl_->backplane;
  impl_->dispatcher =
      std::make_unique<herald::dispatcher>(cfg, impl_->registry, backplane, n, post);
  if (cfg.redis.required_for_readiness) {
    ctx.backplane_down = [&backplane] {
      const backplane_status s = backplane.status();
      return s.up ? std::string() : s.reason.empty() ? s.kind + " backplane down" : s.reason;
    };
  }
  for (const auto& name : used) {
    if (integrations.count(name)) continue;
    const integration_config& ic = *find_integration(cfg, name);
    switch (ic.kind) {
      case integration_kind::http:
        integrations[name] = make_http_integration(ic, contexts, cfg.limits.json_max_depth);
        break;
      case integration_kind::redis_stream:
        integrations[name] = make_stream_integration(ic, cfg.redis.key_prefix, backplane, post);
        break;
      default:
        integrations[name] = make_builtin_integration(ic);
    }
  }
  integration* authorizer = nullptr;
  if (!cfg.auth.authorizer.integration.empty())
    authorizer = integrations.at(cfg.auth.authorizer.integration).get();
  impl_->auth = std::make_unique<authenticator>(cfg, log, authorizer);
  if (impl_->auth->enabled()) ctx.auth = impl_->auth.get();
  impl_->ip_limits = std::make_unique<ip_limiter>(cfg.websocket.per_ip);
  if (impl_->ip_limits->enabled()) ctx.ip_limits = impl_->ip_limits.get();
  impl_->router = std::make_unique<herald::router>(cfg, log, std::move(integrations),
                                                   *impl_->dispatcher, backplane, n);
  ctx.handler = impl_->router.get();
  if (impl_->router->has_connect_route()) ctx.connect_hook = impl_->router.get();
  impl_->admin =
      std::make_unique<admin_api>(ctx, *impl_->dispatcher, backplane, *impl_->router, post);
  // What this node tells the others about itself (the console's and the CLI's cluster view).
  backplane.set_node_summary([admin = impl_->admin.get()] { return admin->node_summary(); });
  // What it answers when another node asks about a user (GET /v1/connections?user=, DELETE
  // /v1/users/{id}/connections on any node).
  backplane.set_node_question(
      [admin = impl_->admin.get()](std::string_view kind, std::string_view arg) {
        return admin->answer_node_question(kind, arg);
      });
  // SSE POSTs for streams on other nodes go through the backplane (no sticky sessions).
  if (cfg.sse.enabled) connect_sse_to_backplane(ctx, backplane);
  http_handler* after_health = impl_->files.get();
  if (cfg.admin.client_listener_connections) {
    impl_->client_connections =
        std::make_unique<client_connections_handler>(*impl_->admin, after_health);
    after_health = impl_->client_connections.get();
  }
  impl_->client_health = std::make_unique<health_handler>(ctx, after_health);
  ctx.client_http = impl_->client_health.get();
  impl_->admin_health = std::make_unique<health_handler>(ctx, impl_->admin.get());
  ctx.admin_http = impl_->admin_health.get();
  if (cfg.admin.enabled && cfg.admin.api_keys.empty() && cfg.admin.sigv4.access_key_id.empty()) {
    log.warn("admin.unauthenticated",
             {{"listen", cfg.admin.listen.to_string()},
              {"hint", "set admin.api_keys or admin.sigv4 to protect the admin API"}});
  }

  auto& ioc = impl_->control().context();
  const auto bind = [&](const endpoint& ep, listener_role role, const char* key) {
    try {
      return std::make_shared<listener>(ioc, ep, role, ctx);
    } catch (const boost::system::system_error& e) {
      // One line: the listener, the address, the reason, and what to do (not Boost's location).
      std::string hint;
      if (e.code() == boost::asio::error::address_in_use) {
        hint = "; another process listens there: stop it, or set " + std::string(key) +
               " to another port";
      } else if (e.code() == boost::asio::error::access_denied) {
        hint = "; ports below 1024 need privileges: use a higher port";
      } else if (e.code().value() == EADDRNOTAVAIL) {
        hint = "; this machine has no such address: use 0.0.0.0 or one of its own";
      }
      throw std::runtime_error(std::string(key) + ": cannot listen on " + ep.to_string() + ": " +
                               e.code().message() + hint);
    }
  };
  impl_->client_listener = bind(cfg.listen, listener_role::client, "listen");
  if (cfg.admin.enabled)
    impl_->admin_listener = bind(cfg.admin.listen, listener_role::admin, "admin.listen");
}

server::~server() {
  for (auto& w : impl_->ctx.workers)
    w->join();
}

void server::run() {
  auto& ctx = impl_->ctx;
  const auto announce = [&](const listener& l, const char* name) {
    const auto ep = l.local_endpoint();
    impl_->log.info("listener.started",
                    {{"listener", name},
                     {"address", ep.address().to_string()},
                     {"port", ep.port()},
                     {"tls", tls_mode_name(l.role() == listener_role::client ? impl_->cfg.tls.mode
                                                                             : tls_mode::off)}});
  };
  impl_->client_listener->start();
  announce(*impl_->client_listener, "client");
  if (impl_->admin_listener) {
    impl_->admin_listener->start();
    announce(*impl_->admin_listener, "admin");
  }
  impl_->backplane->start();
  ctx.listening = true;
  impl_->log.info("server.started", {{"workers", ctx.workers.size()}});
  for (std::size_t i = 1; i < ctx.workers.size(); ++i)
    ctx.workers[i]->start_thread();
  ctx.workers.front()->run();
  for (std::size_t i = 1; i < ctx.workers.size(); ++i)
    ctx.workers[i]->join();
  if (impl_->signals) {
    // Stopped: a further SIGTERM while the process unwinds (an orchestrator repeating itself)
    // must not turn a clean exit into "killed by signal". Destroying the set restores SIG_DFL,
    // so ignore the signals from here on.
    impl_->signals.reset();
    impl_->hangup.reset();
    std::signal(SIGINT, SIG_IGN);
    std::signal(SIGTERM, SIG_IGN);
    std::signal(SIGHUP, SIG_IGN);
  }
}

void server::handle_signals() {
  impl_->signals.emplace(impl_->control().context(), SIGINT, SIGTERM);
  impl_->arm_signals(*this);
  impl_->hangup.emplace(impl_->control().context(), SIGHUP);
  impl_->arm_hangup();
}

void server::stop() {
  asio::post(impl_->control().context(), [this] { impl_->begin_stop(); });
}

void server::stop_now() {
  for (auto& w : impl_->ctx.workers)
    w->stop();
}

endpoint server::client_endpoint() const {
  const auto ep = impl_->client_listener->local_endpoint();
  return {ep.address().to_string(), ep.port()};
}

std::optional<endpoint> server::admin_endpoint() const {
  if (!impl_->admin_listener) return std::nullopt;
  const auto ep = impl_->admin_listener->local_endpoint();
  return endpoint{ep.address().to_string(), ep.port()};
}

std::size_t server::connection_count() const {
  return impl_->registry.size();
}

}  // namespace herald
