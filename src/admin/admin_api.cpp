#include "admin/admin_api.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>

#include <openssl/crypto.h>
#include <nlohmann/json.hpp>

#include "herald/admin/publish_request.hpp"
#include "herald/common/json_input.hpp"
#include "herald/common/prometheus.hpp"
#include "herald/common/text.hpp"
#include "herald/delivery/backplane.hpp"
#include "herald/delivery/history.hpp"
#include "herald/routing/event.hpp"
#include "herald/version.hpp"
#include "herald/ws/frame.hpp"
#include "herald/ws/utf8.hpp"
#include "net/worker.hpp"

namespace herald::net {
namespace {

using nlohmann::json;

constexpr std::string_view kConnectionsMarker = "/@connections/";

// The error shape the AWS SDKs parse: x-amzn-ErrorType names the exception.
http_response aws_error(http::status status, std::string_view type, std::string_view message) {
  auto res = json_response(status, json{{"message", message}}.dump());
  res.set("x-amzn-ErrorType", type);
  return res;
}

// Herald's own error shape.
http_response herald_error(http::status status, std::string_view code, std::string_view message) {
  return json_error(status, code, message);
}

json connection_json(const connection& c, const std::string& node) {
  const auto& i = c.info();
  return {{"connectionId", i.id.view()},
          {"userId", i.user_id().empty() ? json(nullptr) : json(i.user_id())},
          {"connectedAt", iso8601(i.connected_at)},
          {"lastActiveAt", iso8601(c.last_active_at())},
          {"sourceIp", i.source_ip()},
          {"userAgent", i.user_agent()},
          {"subprotocol", i.subprotocol()},
          {"node", node}};
}

}  // namespace

std::string query_value(std::string_view target, std::string_view name) {
  for (auto& [k, v] : query_pairs(target)) {
    if (k == name) return v;
  }
  return {};
}

// A count from the query string: `fallback` when absent, nullopt when not a number in range.
std::optional<std::size_t> query_count(std::string_view target, std::string_view name,
                                       std::size_t fallback, std::size_t min, std::size_t max) {
  const std::string text = query_value(target, name);
  if (text.empty()) return fallback;
  const auto v = parse_offset(text);  // the one parser of counts and offsets from outside
  if (!v || *v < min || *v > max) return std::nullopt;
  return static_cast<std::size_t>(*v);
}

admin_api::admin_api(server_context& ctx, dispatcher& dispatcher, backplane& backplane,
                     const router& router, worker_poster post)
    : ctx_(ctx),
      dispatcher_(dispatcher),
      backplane_(backplane),
      router_(router),
      post_(std::move(post)),
      started_(now_ms()) {
  const auto& s = ctx.cfg.admin.sigv4;
  sigv4_ = {s.access_key_id, s.secret_access_key, s.region, "execute-api", s.max_skew};
  for (const auto& k : ctx.cfg.admin.api_keys)
    key_digests_.push_back(sha256_hex(k));
}

void admin_api::count(api which, unsigned status) {
  std::size_t col = statuses.size();
  for (std::size_t i = 0; i < statuses.size(); ++i) {
    if (statuses[i] == status) col = i;
  }
  requests_[static_cast<std::size_t>(which)][col].fetch_add(1, std::memory_order_relaxed);
}

admin_api::auth admin_api::authenticate(const http_request& req, std::string& why,
                                        bool sigv4_only) const {
  const bool keys = !key_digests_.empty();
  const bool sig = !sigv4_.access_key_id.empty();
  if (!keys && !sig) return auth::ok;  // validated at start-up: only on loopback, or allowed
  const std::string_view authorization = trim(req[http::field::authorization]);
  if (authorization.starts_with("AWS4-HMAC-SHA256")) {
    if (!sig) {
      why = "SigV4 is not configured on this node";
      return auth::invalid;
    }
    string_pairs headers;
    for (const auto& f : req)
      headers.emplace_back(f.name_string(), f.value());
    const auto outcome = verify_sigv4(
        {http::to_string(req.method()), req.target(), &headers, req.body()}, sigv4_, now_ms());
    if (outcome.status == sigv4_status::ok) return auth::ok;
    why = outcome.detail;
    return auth::invalid;
  }
  if (sigv4_only) {
    const bool none = authorization.empty() && req["x-api-key"].empty();
    why = none ? "no credentials" : "only SigV4 signatures are accepted on the client listener";
    return none ? auth::missing : auth::invalid;
  }
  std::string_view key;
  if (authorization.size() > 7 && iequals(authorization.substr(0, 7), "Bearer ")) {
    key = trim(authorization.substr(7));
  } else if (const auto x = req["x-api-key"]; !x.empty()) {
    key = trim(x);
  } else {
    why = "no credentials";
    return auth::missing;
  }
  if (!keys) {
    why = "API keys are not configured on this node";
    return auth::invalid;
  }
  // Digests have the same length whatever the key, so the comparison leaks nothing.
  const std::string digest = sha256_hex(key);
  bool match = false;
  for (const auto& d : key_digests_) {
    match = (CRYPTO_memcmp(d.data(), digest.data(), d.size()) == 0) || match;
  }
  if (match) return auth::ok;
  why = "unknown API key";
  return auth::invalid;
}

bool admin_api::handle_on_client_listener(http_request& req, const request_context& rc,
                                          http_responder& respond) {
  const std::string target(req.target());
  const std::string path = url_decode(request_path(target), false);
  const auto marker = path.find(kConnectionsMarker);
  // "/@connections/{id}" or "/{stage}/@connections/{id}", as on the admin listener.
  if (marker == std::string::npos) return false;
  http_responder done = [this, respond = std::move(respond)](http_response&& res) {
    count(api::aws_connections, res.result_int());
    respond(std::move(res));
  };
  std::string why;
  const auth a = authenticate(req, why, true);
  if (a != auth::ok) {
    ctx_.log.warn("admin.auth_failed", {{"path", request_path(target)},
                                        {"sourceIp", rc.remote_ip},
                                        {"listener", "client"},
                                        {"reason", why}});
    done(aws_error(http::status::forbidden, "ForbiddenException",
                   a == auth::missing ? "Missing Authentication Token" : "Forbidden"));
    return true;
  }
  aws_connection(req, std::string_view(path).substr(marker + kConnectionsMarker.size()), done);
  return true;
}

void client_connections_handler::handle(http_request&& req, const request_context& rc,
                                        http_responder respond) {
  if (api_.handle_on_client_listener(req, rc, respond)) return;
  if (next_) return next_->handle(std::move(req), rc, std::move(respond));
  respond(json_error(http::status::not_found, "not_found", "no such endpoint"));
}

void admin_api::handle(http_request&& req, const request_context& rc, http_responder respond) {
  const std::string target(req.target());
  const std::string path = url_decode(request_path(target), false);
  const auto verb = req.method();

  const auto marker = path.find(kConnectionsMarker);
  const api which = marker != std::string::npos                           ? api::aws_connections
                    : path == "/v1/publish"                               ? api::publish
                    : path.starts_with("/v1/connections")                 ? api::connections
                    : path.starts_with("/v1/users/")                      ? api::users
                    : path.starts_with("/v1/channels")                    ? api::channels
                    : path == "/metrics"                                  ? api::metrics
                    : path == "/v1/node" || path == "/v1/nodes"           ? api::nodes
                    : path == "/console" || path.starts_with("/console/") ? api::console
                                                                          : api::other;
  // Count every answer, whichever thread it comes from.
  http_responder done = [this, which, respond = std::move(respond)](http_response&& res) {
    count(which, res.result_int());
    respond(std::move(res));
  };

  if (which == api::metrics) {
    if (verb != http::verb::get && verb != http::verb::head) {
      return done(herald_error(http::status::method_not_allowed, "method_not_allowed", "use GET"));
    }
    auto res = http_response{http::status::ok, 11};
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.body() = render_metrics();
    return done(std::move(res));
  }

  if (which == api::console) {
    // The console's own files are public (a login page and its script); everything it shows
    // comes from the API below, with the key the operator enters.
    if (verb != http::verb::get && verb != http::verb::head)
      return done(herald_error(http::status::method_not_allowed, "method_not_allowed", "use GET"));
    return done(console_asset(path));
  }

  std::string why;
  const auth a = authenticate(req, why);
  if (a != auth::ok) {
    ctx_.log.warn("admin.auth_failed",
                  {{"path", request_path(target)}, {"sourceIp", rc.remote_ip}, {"reason", why}});
    if (which == api::aws_connections) {
      return done(aws_error(http::status::forbidden, "ForbiddenException",
                            a == auth::missing ? "Missing Authentication Token" : "Forbidden"));
    }
    if (a == auth::missing) {
      auto res = herald_error(http::status::unauthorized, "unauthorized",
                              "send an API key (Authorization: Bearer <key>) or a SigV4 signature");
      res.set(http::field::www_authenticate, "Bearer realm=\"herald\"");
      return done(std::move(res));
    }
    return done(herald_error(http::status::forbidden, "forbidden", "invalid credentials"));
  }

  if (which == api::aws_connections) {
    const std::string_view id_text =
        std::string_view(path).substr(marker + kConnectionsMarker.size());
    return aws_connection(req, id_text, done);
  }
  if (which == api::publish) {
    if (verb != http::verb::post)
      return done(herald_error(http::status::method_not_allowed, "method_not_allowed", "use POST"));
    return publish(req, done);
  }
  if (path == "/v1/connections") {
    if (verb != http::verb::get)
      return done(herald_error(http::status::method_not_allowed, "method_not_allowed", "use GET"));
    return list_connections(req, done);
  }
  if (path.starts_with("/v1/connections/")) {
    const std::string_view id =
        std::string_view(path).substr(std::string_view("/v1/connections/").size());
    if (verb == http::verb::get) return get_connection(id, done);
    if (verb == http::verb::delete_) return delete_connection(id, done);
    return done(
        herald_error(http::status::method_not_allowed, "method_not_allowed", "use GET or DELETE"));
  }
  if (path.starts_with("/v1/users/") && path.ends_with("/connections")) {
    const std::string_view prefix = "/v1/users/";
    const std::string_view user = std::string_view(path).substr(
        prefix.size(), path.size() - prefix.size() - std::string_view("/connections").size());
    if (verb != http::verb::delete_)
      return done(
          herald_error(http::status::method_not_allowed, "method_not_allowed", "use DELETE"));
    return delete_user(user, done);
  }
  if (which == api::nodes) {
    if (verb != http::verb::get)
      return done(herald_error(http::status::method_not_allowed, "method_not_allowed", "use GET"));
    return path == "/v1/node" ? get_node(done) : list_nodes(done);
  }
  if (path == "/v1/channels") {
    if (verb != http::verb::get)
      return done(herald_error(http::status::method_not_allowed, "method_not_allowed", "use GET"));
    return list_channels(req, done);
  }
  if (which == api::channels && verb == http::verb::get) {
    // /v1/channels/{name}: no further segment (channel names may contain '/').
    const std::string_view name =
        std::string_view(path).substr(std::string_view("/v1/channels/").size());
    if (!name.ends_with("/history") && !name.ends_with("/presence")) {
      if (const auto bad = check_channel_name(name, ctx_.cfg.channels.max_name_length))
        return done(herald_error(http::status::bad_request, "invalid_channel", *bad));
      return get_channel(name, done);
    }
  }
  if (which == api::channels) {
    // /v1/channels/{name}/history and /v1/channels/{name}/presence
    const std::string_view rest =
        std::string_view(path).substr(std::string_view("/v1/channels/").size());
    const auto slash = rest.rfind('/');
    if (slash != std::string_view::npos && slash != 0) {
      const std::string_view channel = rest.substr(0, slash);
      const std::string_view what = rest.substr(slash + 1);
      if (what == "history" || what == "presence") {
        if (verb != http::verb::get)
          return done(
              herald_error(http::status::method_not_allowed, "method_not_allowed", "use GET"));
        if (channel != inbox_name) {
          if (const auto bad = check_channel_name(channel, ctx_.cfg.channels.max_name_length))
            return done(herald_error(http::status::bad_request, "invalid_channel", *bad));
        }
        return what == "history" ? channel_history(req, channel, done)
                                 : channel_presence(channel, done);
      }
    }
  }
  done(herald_error(http::status::not_found, "not_found", "no such endpoint"));
}

// ---- /v1/channels/{name}/history, /presence ----------------------------------------------

void admin_api::channel_history(const http_request& req, std::string_view channel_text,
                                const http_responder& done) {
  std::string channel(channel_text);
  const std::string target(req.target());
  // The inbox of a user: /v1/channels/$inbox/history?user=alice
  if (channel == inbox_name) {
    const std::string user = query_value(target, "user");
    if (user.empty())
      return done(herald_error(http::status::bad_request, "bad_request",
                               "name the inbox's user: ?user=<id>"));
    channel = std::string(inbox_prefix) + user;
  }
  const history_rule* rule = find_history_rule(ctx_.cfg, channel);
  if (!rule)
    return done(herald_error(http::status::not_found, "no_history",
                             "this channel keeps no history (see history.rules)"));
  const std::size_t max_page = ctx_.cfg.history.max_page;
  const auto since = query_count(target, "since", 0, 0, std::numeric_limits<std::size_t>::max());
  if (!since)
    return done(herald_error(http::status::bad_request, "bad_request", "since must be an offset"));
  const auto limit =
      query_count(target, "limit", std::min<std::size_t>(100, max_page), 1, max_page);
  if (!limit)
    return done(herald_error(http::status::bad_request, "bad_request",
                             "limit must be 1 to " + std::to_string(max_page)));
  history_query q;
  q.channel = channel;
  q.since = *since;
  q.limit = *limit;
  const std::string epoch = query_value(target, "epoch");
  backplane_.read_history(
      q, *rule, 0,
      [done, q, epoch, depth = ctx_.cfg.limits.json_max_depth,
       shown = std::string(channel_text)](history_page page) {
        if (!page.ok)
          return done(herald_error(http::status::service_unavailable, "unavailable",
                                   "history unavailable: " + page.error));
        json messages = json::array();
        const std::size_t n = std::min(page.entries.size(), q.limit);
        for (std::size_t i = 0; i < n; ++i) {
          const auto& e = page.entries[i];
          json m = {{"offset", e.offset}, {"time", iso8601(e.time)}};
          if (!e.id.empty()) m["id"] = e.id;
          // Stored by Herald or by a backend's FCALL; never recursed over unbounded.
          m["data"] = parse_json(e.data_json, depth);
          if (m["data"].is_discarded()) m["data"] = e.data_json;  // shown as the text it is
          messages.push_back(std::move(m));
        }
        json body = {{"channel", shown},
                     {"epoch", page.epoch},
                     {"offset", page.top},
                     {"messages", std::move(messages)},
                     {"more", page.entries.size() > q.limit}};
        // Whether the messages follow `since` without a gap (nothing trimmed or expired between).
        body["complete"] =
            (epoch.empty() || epoch == page.epoch) && page.from <= page.top &&
            (page.from == page.top || (n > 0 && page.entries.front().offset == page.from + 1));
        if (page.acked != 0) body["acked"] = page.acked;
        done(json_response(http::status::ok, body.dump()));
      });
}

void admin_api::channel_presence(std::string_view channel, const http_responder& done) {
  if (!find_presence_rule(ctx_.cfg, channel))
    return done(herald_error(http::status::not_found, "no_presence",
                             "this channel does not track presence (see presence.rules)"));
  backplane_.presence(
      std::string(channel), ctx_.cfg.presence.max_members,
      [done, shown = std::string(channel)](presence_result r) {
        if (!r.ok)
          return done(herald_error(http::status::service_unavailable, "unavailable",
                                   "presence unavailable: " + r.error));
        json members = json::array();
        std::vector<std::string> users;
        for (const auto& m : r.members) {
          members.push_back({{"connectionId", m.connection_id},
                             {"userId", m.user_id.empty() ? json(nullptr) : json(m.user_id)},
                             {"node", m.node}});
          if (!m.user_id.empty()) users.push_back(m.user_id);
        }
        std::sort(users.begin(), users.end());
        users.erase(std::unique(users.begin(), users.end()), users.end());
        done(json_response(http::status::ok, json{{"channel", shown},
                                                  {"connections", members.size()},
                                                  {"members", std::move(members)},
                                                  {"users", std::move(users)},
                                                  {"truncated", r.truncated}}
                                                 .dump()));
      });
}

// ---- AWS @connections -------------------------------------------------------------------

void admin_api::locate(const connection_id& id, std::function<void(located)> done) const {
  if (auto local = ctx_.registry.find(id)) return done({std::move(local), std::nullopt});
  // Not here: the directory knows whether another node holds it.
  backplane_.locate(std::string(id.view()),
                    [done = std::move(done)](std::optional<remote_connection> rc) {
                      done({nullptr, std::move(rc)});
                    });
}

void admin_api::send_to(const located& where, message_ptr payload, bool binary,
                        std::function<void(remote_result)> done) {
  if (!where.local)
    return backplane_.send_remote(*where.remote, std::move(payload), binary, std::move(done));
  // Sent on the connection's own thread, where the queue's answer is exact.
  post_(where.local->info().worker,
        [conn = where.local, payload = std::move(payload), binary, done = std::move(done)] {
          switch (conn->send(payload, binary)) {
            case send_result::queued:
              return done(remote_result::queued);
            case send_result::dropped:
              return done(remote_result::dropped);
            case send_result::closing:
              return done(remote_result::gone);
          }
        });
}

void admin_api::close(const located& where, std::uint16_t code, std::string reason) {
  if (where.local) return where.local->close(code, std::move(reason));
  backplane_.close_remote(*where.remote, code, std::move(reason));
}

void admin_api::aws_connection(http_request& req, std::string_view id_text,
                               const http_responder& done) {
  const std::string request_id = make_request_id();
  const http_responder reply = [done, request_id](http_response&& res) {
    res.set("x-amzn-RequestId", request_id);
    done(std::move(res));
  };
  const auto id = connection_id::parse(id_text);
  if (!id)
    return reply(
        aws_error(http::status::bad_request, "BadRequestException", "Invalid connectionId"));
  const auto gone = [] {
    return aws_error(http::status::gone, "GoneException", "The connection no longer exists");
  };
  const auto method = req.method();
  if (method != http::verb::get && method != http::verb::post && method != http::verb::delete_) {
    return reply(aws_error(http::status::method_not_allowed, "BadRequestException",
                           "Use GET, POST or DELETE"));
  }
  if (method == http::verb::post && req.body().size() > ctx_.cfg.websocket.max_message_bytes) {
    return reply(aws_error(http::status::payload_too_large, "PayloadTooLargeException",
                           "Message too long: the limit is " +
                               std::to_string(ctx_.cfg.websocket.max_message_bytes) + " bytes"));
  }
  // Raw, as API Gateway sends it: text if it is UTF-8, binary otherwise.
  const bool binary = method == http::verb::post && !ws::is_valid_utf8(req.body());
  auto payload = make_message(std::move(req.body()));
  locate(*id, [this, method, payload, binary, reply, gone](located where) {
    if (!where.local && !where.remote) return reply(gone());
    if (method == http::verb::get) {
      const bool local = where.local != nullptr;
      const json body = {
          {"connectedAt",
           iso8601(local ? where.local->info().connected_at : where.remote->connected_at)},
          {"identity",
           {{"sourceIp", local ? where.local->info().source_ip() : where.remote->source_ip},
            {"userAgent", local ? where.local->info().user_agent() : where.remote->user_agent}}},
          {"lastActiveAt",
           iso8601(local ? where.local->last_active_at() : where.remote->last_active_at)}};
      return reply(json_response(http::status::ok, body.dump()));
    }
    if (method == http::verb::delete_) {
      close(where, ws::close_code::normal, "connection deleted");
      return reply(http_response{http::status::no_content, 11});
    }
    send_to(where, payload, binary, [reply, gone](remote_result r) {
      switch (r) {
        case remote_result::queued:
          return reply(http_response{http::status::ok, 11});
        case remote_result::dropped:
          return reply(aws_error(http::status::too_many_requests, "LimitExceededException",
                                 "The client's send buffer is full"));
        case remote_result::gone:
          return reply(gone());
        case remote_result::unavailable:
          return reply(aws_error(http::status::service_unavailable, "ServiceUnavailableException",
                                 "The node holding the connection did not answer"));
      }
    });
  });
}

// ---- /v1/publish --------------------------------------------------------------------------

void admin_api::publish(http_request& req, const http_responder& done) {
  auto parsed = parse_publish_request(req.body(), req["Idempotency-Key"], ctx_.cfg);
  if (const auto* refused = std::get_if<publish_refusal>(&parsed)) {
    return done(
        herald_error(static_cast<http::status>(refused->status), refused->code, refused->message));
  }
  auto& request = std::get<publish_request>(parsed);
  const bool batch = request.batch;
  std::vector<publication>& pubs = request.publications;

  // Deliver; answer once every publication has reached every worker.
  struct gather {
    std::vector<publish_outcome> outcomes;
    std::atomic<std::size_t> pending;
    http_responder done;
    bool batch;
  };
  auto g = std::make_shared<gather>();
  g->outcomes.resize(pubs.size());
  g->pending = pubs.size();
  g->done = done;
  g->batch = batch;
  for (std::size_t i = 0; i < pubs.size(); ++i) {
    dispatcher_.publish(std::move(pubs[i]), [g, i](publish_outcome o) {
      g->outcomes[i] = std::move(o);
      if (g->pending.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
      // One object per publication: recipients on this node (live ones), or the stored
      // position (history channels: delivery follows from the store, on every node).
      bool forwarded = true, failed = false;
      json results = json::array();
      for (const auto& out : g->outcomes) {
        json item;
        if (out.stored) {
          if (out.store.ok) {
            item = {{"offset", out.store.offset},
                    {"epoch", out.store.epoch},
                    {"duplicate", out.store.duplicate}};
          } else {
            failed = true;
            item = {{"error", "unavailable"}, {"message", out.store.error}};
          }
        } else {
          item = {{"recipients", out.recipients}};
        }
        forwarded = forwarded && out.forwarded;
        results.push_back(std::move(item));
      }
      json body;
      if (g->batch) {
        json counts = json::array();
        bool any_stored = false;
        for (const auto& out : g->outcomes) {
          counts.push_back(out.recipients);
          any_stored = any_stored || out.stored;
        }
        body["recipients"] = std::move(counts);
        if (any_stored) body["results"] = std::move(results);
      } else {
        body = results[0];
      }
      body["forwarded"] = forwarded;  // handed to the other nodes (the Redis backplane)
      if (failed && !g->batch) {
        return g->done(herald_error(
            http::status::service_unavailable, "unavailable",
            "not stored: " + g->outcomes[0].store.error + "; retry with the same idempotency key"));
      }
      g->done(json_response(failed ? http::status::service_unavailable : http::status::accepted,
                            body.dump()));
    });
  }
}

// ---- /v1/connections, /v1/users -----------------------------------------------------------

void admin_api::get_connection(std::string_view id_text, const http_responder& done) {
  const auto id = connection_id::parse(id_text);
  if (!id)
    return done(herald_error(http::status::bad_request, "bad_request", "not a connection id"));
  locate(*id, [this, done](located where) {
    if (where.remote) {
      const auto& rc = *where.remote;
      const json body = {{"connectionId", rc.connection_id},
                         {"userId", rc.user_id.empty() ? json(nullptr) : json(rc.user_id)},
                         {"connectedAt", iso8601(rc.connected_at)},
                         {"lastActiveAt", iso8601(rc.last_active_at)},
                         {"sourceIp", rc.source_ip},
                         {"userAgent", rc.user_agent},
                         {"subprotocol", rc.subprotocol},
                         {"node", rc.node}};
      return done(json_response(http::status::ok, body.dump()));
    }
    if (!where.local)
      return done(herald_error(http::status::not_found, "not_found", "no such connection"));
    // Its channels live on its worker thread.
    post_(where.local->info().worker, [this, conn = where.local, done] {
      json body = connection_json(*conn, ctx_.cfg.node_id);
      body["channels"] = dispatcher_.channels_of(*conn);
      done(json_response(http::status::ok, body.dump()));
    });
  });
}

namespace {

// The newest first (stable pages while connections come and go at the end); only the first
// `end` are sorted (10,000 connections: a partial sort of offset + limit).
void sort_newest_first(std::vector<std::shared_ptr<connection>>& conns, std::size_t end) {
  const auto newer = [](const std::shared_ptr<connection>& a,
                        const std::shared_ptr<connection>& b) {
    if (a->info().connected_at != b->info().connected_at)
      return a->info().connected_at > b->info().connected_at;
    return a->id().view() < b->id().view();
  };
  end = std::min(end, conns.size());
  std::partial_sort(conns.begin(), conns.begin() + static_cast<std::ptrdiff_t>(end), conns.end(),
                    newer);
}

// {"answered": [this node, then the others as they answered], "silent": [...]}.
json nodes_json(const std::string& self, const cluster_replies& replies) {
  json answered = json::array({self});
  for (const auto& r : replies.answered)
    answered.push_back(r.node);
  return {{"answered", answered}, {"silent", replies.silent}};
}

}  // namespace

json admin_api::user_connections_here(const std::string& user, std::size_t limit) const {
  auto conns = ctx_.registry.find_user(user);
  const std::size_t end = std::min(conns.size(), limit);
  sort_newest_first(conns, end);
  json list = json::array();
  for (std::size_t i = 0; i < end; ++i)
    list.push_back(connection_json(*conns[i], ctx_.cfg.node_id));
  return {{"count", conns.size()}, {"connections", std::move(list)}};
}

std::size_t admin_api::close_user_here(const std::string& user) {
  const auto conns = ctx_.registry.find_user(user);
  for (const auto& c : conns)
    c->close(ws::close_code::normal, "user disconnected");
  return conns.size();
}

std::string admin_api::answer_node_question(std::string_view kind, std::string_view arg) {
  if (kind == "user_connections") {
    const json a = parse_json(arg, ctx_.cfg.limits.json_max_depth);
    const std::string user = string_member(a, "user");
    if (user.empty()) return R"({"count":0,"connections":[]})";
    return user_connections_here(user, uint_member(a, "limit", 100)).dump();
  }
  if (kind == "close_user") {
    const std::size_t closed = arg.empty() ? 0 : close_user_here(std::string(arg));
    return json{{"closed", closed}}.dump();
  }
  return "{}";
}

void admin_api::list_connections(const http_request& req, const http_responder& done) {
  const std::string user = query_value(req.target(), "user");
  const auto limit = query_count(req.target(), "limit", 100, 1, 1000);
  const auto offset = query_count(req.target(), "offset", 0, 0, 100'000'000);
  if (!limit)
    return done(herald_error(http::status::bad_request, "bad_request", "limit must be 1 to 1000"));
  if (!offset)
    return done(herald_error(http::status::bad_request, "bad_request",
                             "offset must be a non-negative integer"));
  const std::size_t end = *offset + *limit;
  if (user.empty()) {
    // Every connection of this node (the whole cluster's would be unbounded).
    auto conns = ctx_.registry.all();
    sort_newest_first(conns, end);
    json list = json::array();
    for (std::size_t i = *offset; i < std::min(end, conns.size()); ++i)
      list.push_back(connection_json(*conns[i], ctx_.cfg.node_id));
    return done(json_response(http::status::ok, json{{"connections", list},
                                                     {"count", conns.size()},
                                                     {"offset", *offset},
                                                     {"nodes", nodes_json(ctx_.cfg.node_id, {})}}
                                                    .dump()));
  }
  // A user's connections on every node: each answers with its newest offset + limit, so the
  // merged page is exact.
  const std::string arg = json{{"user", user}, {"limit", end}}.dump();
  backplane_.ask_other_nodes(
      "user_connections", arg, [this, user, end, offset = *offset, done](cluster_replies replies) {
        std::vector<json> all;
        std::size_t count = 0;
        const auto take = [&](json a) {
          count += uint_member(a, "count", 0);
          if (const auto it = a.find("connections");
              a.is_object() && it != a.end() && it->is_array()) {
            for (auto& c : *it) {
              if (c.is_object()) all.push_back(std::move(c));
            }
          }
        };
        take(user_connections_here(user, end));
        for (const auto& r : replies.answered)
          take(parse_json(r.answer_json, ctx_.cfg.limits.json_max_depth));
        std::sort(all.begin(), all.end(), [](const json& a, const json& b) {
          // ISO 8601 with milliseconds sorts as time does.
          const std::string ta = string_member(a, "connectedAt"),
                            tb = string_member(b, "connectedAt");
          if (ta != tb) return ta > tb;
          return string_member(a, "connectionId") < string_member(b, "connectionId");
        });
        json list = json::array();
        for (std::size_t i = offset; i < std::min(end, all.size()); ++i)
          list.push_back(std::move(all[i]));
        done(json_response(http::status::ok, json{{"connections", list},
                                                  {"count", count},
                                                  {"offset", offset},
                                                  {"nodes", nodes_json(ctx_.cfg.node_id, replies)}}
                                                 .dump()));
      });
}

void admin_api::delete_connection(std::string_view id_text, const http_responder& done) {
  const auto id = connection_id::parse(id_text);
  if (!id)
    return done(herald_error(http::status::bad_request, "bad_request", "not a connection id"));
  locate(*id, [this, done](located where) {
    if (!where.local && !where.remote)
      return done(herald_error(http::status::not_found, "not_found", "no such connection"));
    close(where, ws::close_code::normal, "connection deleted");
    done(http_response{http::status::no_content, 11});
  });
}

void admin_api::delete_user(std::string_view user, const http_responder& done) {
  if (user.empty() || user.size() > 256 || user.find('/') != std::string_view::npos) {
    return done(herald_error(http::status::bad_request, "bad_request", "not a user id"));
  }
  const std::size_t here = close_user_here(std::string(user));
  backplane_.ask_other_nodes(
      "close_user", std::string(user), [this, here, done](cluster_replies replies) {
        std::uint64_t closed = here;
        for (const auto& r : replies.answered)
          closed +=
              uint_member(parse_json(r.answer_json, ctx_.cfg.limits.json_max_depth), "closed", 0);
        done(json_response(http::status::ok, json{{"closed", closed},
                                                  {"forwarded", replies.asked},
                                                  {"nodes", nodes_json(ctx_.cfg.node_id, replies)}}
                                                 .dump()));
      });
}

}  // namespace herald::net
