#include "net/admin_api.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>

#include <openssl/crypto.h>
#include <nlohmann/json.hpp>

#include "herald/backplane.hpp"
#include "herald/event.hpp"
#include "herald/history.hpp"
#include "herald/json_input.hpp"
#include "herald/prometheus.hpp"
#include "herald/text.hpp"
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
          {"userId", i.user_id.empty() ? json(nullptr) : json(i.user_id)},
          {"connectedAt", iso8601(i.connected_at)},
          {"lastActiveAt", iso8601(c.last_active_at())},
          {"sourceIp", i.source_ip},
          {"userAgent", i.user_agent},
          {"subprotocol", i.subprotocol},
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

namespace {

// Process figures from /proc, for the standard process_* metrics.
struct process_stats {
  double cpu_seconds = 0;
  std::uint64_t rss_bytes = 0;
  std::uint64_t virtual_bytes = 0;
  std::uint64_t open_fds = 0;
  std::uint64_t max_fds = 0;
};

process_stats read_process_stats() {
  process_stats s;
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (std::getline(stat, line)) {
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const auto close = line.rfind(')');
    if (close != std::string::npos) {
      std::vector<std::string> f;
      std::string field;
      for (std::size_t i = close + 2; i <= line.size(); ++i) {
        if (i == line.size() || line[i] == ' ') {
          f.push_back(field);
          field.clear();
        } else {
          field += line[i];
        }
      }
      // f[0] is field 3 (state); utime is field 14, stime 15, vsize 23, rss 24.
      if (f.size() > 21) {
        const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
        s.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;
        s.virtual_bytes = std::stoull(f[20]);
        s.rss_bytes = std::stoull(f[21]) * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
      }
    }
  }
  if (DIR* d = opendir("/proc/self/fd")) {
    while (const dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++s.open_fds;
    }
    closedir(d);
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) s.max_fds = rl.rlim_cur;
  return s;
}

}  // namespace

admin_api::admin_api(server_context& ctx, dispatcher& channels, const router& app,
                     worker_poster post)
    : ctx_(ctx), channels_(channels), app_(app), post_(std::move(post)), started_(now_ms()) {
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

admin_api::auth admin_api::authenticate(const http_request& req, std::string& why) const {
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
      if (const auto bad = dispatcher::check_channel(name, ctx_.cfg.channels.max_name_length))
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
          if (const auto bad =
                  dispatcher::check_channel(channel, ctx_.cfg.channels.max_name_length))
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
  ctx_.cluster->read_history(
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
  ctx_.cluster->presence(
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
  ctx_.cluster->locate(std::string(id.view()),
                       [done = std::move(done)](std::optional<remote_connection> rc) {
                         done({nullptr, std::move(rc)});
                       });
}

void admin_api::send_to(const located& where, std::shared_ptr<const std::string> payload,
                        bool binary, std::function<void(remote_result)> done) {
  if (!where.local)
    return ctx_.cluster->send_remote(*where.remote, std::move(payload), binary, std::move(done));
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
  ctx_.cluster->close_remote(*where.remote, code, std::move(reason));
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
  auto payload = std::make_shared<const std::string>(std::move(req.body()));
  locate(*id, [this, method, payload, binary, reply, gone](located where) {
    if (!where.local && !where.remote) return reply(gone());
    if (method == http::verb::get) {
      const bool local = where.local != nullptr;
      const json body = {
          {"connectedAt",
           iso8601(local ? where.local->info().connected_at : where.remote->connected_at)},
          {"identity",
           {{"sourceIp", local ? where.local->info().source_ip : where.remote->source_ip},
            {"userAgent", local ? where.local->info().user_agent : where.remote->user_agent}}},
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
  json_status parsed = json_status::ok;
  const json doc = parse_json(req.body(), ctx_.cfg.limits.json_max_depth, &parsed);
  if (parsed == json_status::too_deep)
    return done(herald_error(http::status::bad_request, "bad_request",
                             "the body is " + describe(parsed, ctx_.cfg.limits.json_max_depth) +
                                 " (limits.json_max_depth)"));
  if (doc.is_discarded())
    return done(
        herald_error(http::status::bad_request, "bad_request", "the body is not valid JSON"));
  const bool batch = doc.is_array();
  if (batch && (doc.empty() || doc.size() > ctx_.cfg.admin.max_batch)) {
    return done(herald_error(
        http::status::bad_request, "bad_request",
        "a batch holds 1 to " + std::to_string(ctx_.cfg.admin.max_batch) + " publications"));
  }
  const json items = batch ? doc : json::array({doc});

  // Validate everything first: a rejected request has no effect at all.
  std::vector<publication> pubs;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const json& item = items[i];
    const std::string where = batch ? "item " + std::to_string(i) + ": " : "";
    const auto fail = [&](std::string_view code, const std::string& message,
                          http::status st = http::status::bad_request) {
      done(herald_error(st, code, where + message));
    };
    if (!item.is_object()) return fail("bad_request", "a publication is a JSON object");
    for (const auto& [k, v] : item.items()) {
      if (k != "channel" && k != "user" && k != "connection" && k != "broadcast" && k != "data" &&
          k != "id" && k != "exclude" && k != "store" && k != "idempotency_key") {
        return fail("bad_request", "unknown field \"" + k + "\"");
      }
    }
    publication p;
    int targets = 0;
    if (const auto it = item.find("channel"); it != item.end()) {
      ++targets;
      if (!it->is_string()) return fail("bad_request", "\"channel\" must be a string");
      p.kind = target_kind::channel;
      p.target = it->get<std::string>();
      if (const auto why = dispatcher::check_channel(p.target, ctx_.cfg.channels.max_name_length)) {
        return fail("invalid_channel", *why);
      }
    }
    if (const auto it = item.find("user"); it != item.end()) {
      ++targets;
      if (!it->is_string() || it->get_ref<const std::string&>().empty() ||
          it->get_ref<const std::string&>().size() > 256) {
        return fail("bad_request", "\"user\" must be a string of 1 to 256 characters");
      }
      p.kind = target_kind::user;
      p.target = it->get<std::string>();
    }
    if (const auto it = item.find("connection"); it != item.end()) {
      ++targets;
      if (!it->is_string() || !connection_id::parse(it->get_ref<const std::string&>())) {
        return fail("bad_request", "\"connection\" must be a connection id");
      }
      p.kind = target_kind::connection;
      p.target = it->get<std::string>();
    }
    if (const auto it = item.find("broadcast"); it != item.end()) {
      ++targets;
      if (!it->is_boolean() || !it->get<bool>())
        return fail("bad_request", "\"broadcast\" must be true");
      p.kind = target_kind::broadcast;
    }
    if (targets != 1)
      return fail("bad_request", "name exactly one of channel, user, connection, broadcast");
    const auto data = item.find("data");
    if (data == item.end()) return fail("bad_request", "\"data\" is required");
    std::string id;
    if (const auto it = item.find("id"); it != item.end()) {
      if (!it->is_string() || it->get_ref<const std::string&>().empty() ||
          it->get_ref<const std::string&>().size() > 128) {
        return fail("bad_request", "\"id\" must be a string of 1 to 128 characters");
      }
      id = it->get<std::string>();
    }
    if (const auto it = item.find("exclude"); it != item.end()) {
      if (!it->is_string() || !connection_id::parse(it->get_ref<const std::string&>())) {
        return fail("bad_request", "\"exclude\" must be a connection id");
      }
      p.exclude = it->get<std::string>();
    }
    std::string key = !batch ? std::string(req["Idempotency-Key"]) : std::string();
    if (const auto it = item.find("idempotency_key"); it != item.end()) {
      if (!it->is_string()) return fail("bad_request", "\"idempotency_key\" must be a string");
      key = it->get<std::string>();
    }
    if (key.size() > 128)
      return fail("bad_request", "an idempotency key is at most 128 characters");
    if (const auto it = item.find("store"); it != item.end()) {
      if (!it->is_boolean()) return fail("bad_request", "\"store\" must be true or false");
      if (it->get<bool>()) {
        // Stored in the user's inbox, delivered to the user's connections subscribed to $inbox.
        if (p.kind != target_kind::user)
          return fail("bad_request", "\"store\" applies to user publications (the inbox)");
        if (!ctx_.cfg.inbox.enabled)
          return fail("bad_request", "the inbox is not enabled (inbox.enabled)");
        p.kind = target_kind::channel;
        p.target = std::string(inbox_prefix) + p.target;
      }
    }
    if (!key.empty() && !(p.kind == target_kind::channel && find_history_rule(ctx_.cfg, p.target)))
      return fail("bad_request",
                  "idempotency keys apply to channels with history and to the inbox");
    auto built =
        publication::message(p.kind, std::move(p.target),
                             data->dump(-1, ' ', false, json::error_handler_t::replace), id);
    built.exclude = std::move(p.exclude);
    built.idempotency_key = std::move(key);
    if (built.payload->size() > ctx_.cfg.websocket.max_message_bytes) {
      return fail("payload_too_large",
                  "the message is " + std::to_string(built.payload->size()) +
                      " bytes; the limit is " +
                      std::to_string(ctx_.cfg.websocket.max_message_bytes),
                  http::status::payload_too_large);
    }
    pubs.push_back(std::move(built));
  }

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
    channels_.publish(std::move(pubs[i]), [g, i](publish_outcome o) {
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
      body["channels"] = channels_.channels_of(*conn);
      done(json_response(http::status::ok, body.dump()));
    });
  });
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
  auto conns = user.empty() ? ctx_.registry.all() : ctx_.registry.find_user(user);
  // Newest first, so pages are stable while connections come and go at the end; only the
  // requested page is sorted (10,000 connections: a partial sort of offset + limit).
  const std::size_t end = std::min(conns.size(), *offset + *limit);
  const auto newer = [](const std::shared_ptr<connection>& a,
                        const std::shared_ptr<connection>& b) {
    if (a->info().connected_at != b->info().connected_at)
      return a->info().connected_at > b->info().connected_at;
    return a->id().view() < b->id().view();
  };
  std::partial_sort(conns.begin(), conns.begin() + static_cast<std::ptrdiff_t>(end), conns.end(),
                    newer);
  json list = json::array();
  for (std::size_t i = *offset; i < end; ++i)
    list.push_back(connection_json(*conns[i], ctx_.cfg.node_id));
  done(json_response(
      http::status::ok,
      json{{"connections", list}, {"count", conns.size()}, {"offset", *offset}}.dump()));
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
  const auto conns = ctx_.registry.find_user(std::string(user));
  for (const auto& c : conns)
    c->close(ws::close_code::normal, "user disconnected");
  // The other nodes close theirs when the backplane tells them.
  ctx_.cluster->close_user(std::string(user), ws::close_code::normal, "user disconnected");
  const bool forwarded = ctx_.cfg.backplane == backplane_kind::redis && ctx_.cluster->status().up;
  done(json_response(http::status::ok,
                     json{{"closed", conns.size()}, {"forwarded", forwarded}}.dump()));
}

// ---- /metrics -----------------------------------------------------------------------------

std::string admin_api::render_metrics() const {
  prometheus_text p;
  const auto sum = [&](auto member) {
    std::uint64_t total = 0;
    for (const auto& w : ctx_.workers)
      total += (w->metrics().*member).value();
    return total;
  };
  const auto counter_family = [&](std::string_view name, std::string_view help, auto member) {
    p.family(name, "counter", help);
    p.sample(name, {}, sum(member));
  };

  p.family("herald_build_info", "gauge", "Herald's version and this node's id (always 1)");
  p.sample("herald_build_info", {{"version", herald::version}, {"node_id", ctx_.cfg.node_id}},
           std::uint64_t{1});
  p.family("herald_ready", "gauge", "1 while the node takes new connections (see /readyz)");
  p.sample("herald_ready", {}, std::uint64_t{ctx_.listening.load() && !ctx_.draining.load()});
  p.family("herald_draining", "gauge", "1 while the node is shutting down");
  p.sample("herald_draining", {}, std::uint64_t{ctx_.draining.load()});
  p.family("herald_workers", "gauge", "Worker threads (one event loop each)");
  p.sample("herald_workers", {}, static_cast<std::uint64_t>(ctx_.workers.size()));

  std::int64_t open = 0;
  for (const auto& w : ctx_.workers)
    open += w->metrics().connections_open.value();
  p.family("herald_connections", "gauge", "Open WebSocket connections");
  p.sample("herald_connections", {}, open);
  counter_family("herald_connections_opened_total", "WebSocket connections opened",
                 &worker_metrics::connections_opened);
  p.family("herald_connections_closed_total", "counter",
           "WebSocket connections closed, by close code");
  for (std::size_t i = 0; i < counted_close_codes.size() + 3; ++i) {
    std::uint64_t n = 0;
    for (const auto& w : ctx_.workers)
      n += w->metrics().closes_by_code[i].value();
    const std::string code = i < counted_close_codes.size() ? std::to_string(counted_close_codes[i])
                             : i == counted_close_codes.size()     ? "3xxx"
                             : i == counted_close_codes.size() + 1 ? "4xxx"
                                                                   : "other";
    p.sample("herald_connections_closed_total", {{"code", code}}, n);
  }
  p.family("herald_handshakes_rejected_total", "counter", "Upgrades refused, by reason");
  for (std::size_t i = 0; i < reject_reason_names.size(); ++i) {
    std::uint64_t n = 0;
    for (const auto& w : ctx_.workers)
      n += w->metrics().handshakes_rejected[i].value();
    p.sample("herald_handshakes_rejected_total", {{"reason", reject_reason_names[i]}}, n);
  }
  p.family("herald_connections_shed_total", "counter",
           "Connections answered 503 at accept and closed because the process was out of file "
           "descriptors");
  p.sample("herald_connections_shed_total", {{"reason", "descriptors"}},
           ctx_.shed_no_descriptors.load(std::memory_order_relaxed));
  counter_family("herald_token_expiry_closes_total",
                 "Connections closed (4001) because their token expired",
                 &worker_metrics::token_expiry_closes);
  counter_family("herald_drain_closes_total",
                 "Connections closed (1001) by a graceful drain, spread over shutdown.close_window",
                 &worker_metrics::drain_closes);
  counter_family("herald_messages_received_total", "WebSocket messages received from clients",
                 &worker_metrics::messages_in);
  counter_family("herald_messages_sent_total", "WebSocket messages written to clients",
                 &worker_metrics::messages_out);
  counter_family("herald_received_bytes_total", "Bytes read from WebSocket connections",
                 &worker_metrics::bytes_in);
  counter_family("herald_sent_bytes_total", "Bytes written to WebSocket connections",
                 &worker_metrics::bytes_out);
  counter_family("herald_socket_writes_total",
                 "Write calls on WebSocket connections (messages sent / writes: frames per write)",
                 &worker_metrics::socket_writes);
  counter_family("herald_protocol_errors_total", "Connections closed for violating RFC 6455",
                 &worker_metrics::protocol_errors);
  counter_family("herald_send_queue_dropped_total",
                 "Messages dropped because a client's send queue was full",
                 &worker_metrics::send_queue_dropped);
  p.family("herald_slow_consumer_closes_total", "counter",
           "Connections closed because the client did not keep up");
  p.sample("herald_slow_consumer_closes_total", {{"reason", "send_queue_overflow"}},
           sum(&worker_metrics::send_queue_overflow_closes));
  p.sample("herald_slow_consumer_closes_total", {{"reason", "write_timeout"}},
           sum(&worker_metrics::write_timeouts));
  counter_family("herald_pong_timeouts_total", "Connections dropped because a ping got no pong",
                 &worker_metrics::pong_timeouts);
  counter_family("herald_messages_throttled_total",
                 "Messages refused by the per-connection rate limit",
                 &worker_metrics::messages_throttled);
  counter_family("herald_http_requests_total", "HTTP requests read on both listeners",
                 &worker_metrics::http_requests);

  // Routes.
  std::uint64_t forbidden = 0, rejected = 0, channel_actions = 0, refused = 0;
  std::int64_t inflight = 0;
  for (unsigned w = 0; w < app_.workers(); ++w) {
    refused += app_.metrics(w).refused.value();
    forbidden += app_.metrics(w).forbidden.value();
    rejected += app_.metrics(w).connects_rejected.value();
    channel_actions += app_.metrics(w).channel_actions.value();
    inflight += app_.metrics(w).inflight.value();
  }
  struct route_sum {
    std::uint64_t invocations = 0, failures = 0;
    std::array<std::uint64_t, latency_histogram::bounds.size() + 1> buckets{};
    double sum = 0;
  };
  std::map<std::string, route_sum> routes;
  app_.for_each_route_metrics([&](const std::string& key, unsigned, const route_metrics& m) {
    auto& r = routes[key];
    r.invocations += m.invocations.value();
    r.failures += m.failures.value();
    for (std::size_t i = 0; i < r.buckets.size(); ++i)
      r.buckets[i] += m.latency.bucket(i);
    r.sum += m.latency.sum();
  });
  p.family("herald_route_invocations_total", "counter", "Integration calls, by route");
  for (const auto& [key, r] : routes)
    p.sample("herald_route_invocations_total", {{"route", key}}, r.invocations);
  p.family("herald_route_failures_total", "counter",
           "Failed integration calls (unreachable, timeout, 5xx, bad answer), by route");
  for (const auto& [key, r] : routes)
    p.sample("herald_route_failures_total", {{"route", key}}, r.failures);
  p.family("herald_integration_duration_seconds", "histogram",
           "Integration call duration, by route");
  for (const auto& [key, r] : routes) {
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < r.buckets.size(); ++i) {
      cumulative += r.buckets[i];
      char le[32];
      if (i < latency_histogram::bounds.size()) {
        std::snprintf(le, sizeof le, "%g", latency_histogram::bounds[i]);
      } else {
        std::snprintf(le, sizeof le, "+Inf");
      }
      p.sample("herald_integration_duration_seconds_bucket", {{"route", key}, {"le", le}},
               cumulative);
    }
    p.sample("herald_integration_duration_seconds_sum", {{"route", key}}, r.sum);
    p.sample("herald_integration_duration_seconds_count", {{"route", key}}, cumulative);
  }
  p.family("herald_messages_refused_total", "counter",
           "Client messages refused with a bad_request error frame, by reason");
  p.sample("herald_messages_refused_total", {{"reason", "too_deep"}}, refused);
  p.family("herald_routes_forbidden_total", "counter",
           "Messages that matched no route with no $default");
  p.sample("herald_routes_forbidden_total", {}, forbidden);
  p.family("herald_connects_rejected_total", "counter",
           "Handshakes rejected by the $connect integration");
  p.sample("herald_connects_rejected_total", {}, rejected);
  p.family("herald_integration_inflight", "gauge", "Integration calls in progress");
  p.sample("herald_integration_inflight", {}, inflight);
  p.family("herald_channel_actions_total", "counter", "subscribe and unsubscribe actions handled");
  p.sample("herald_channel_actions_total", {}, channel_actions);

  // Channels.
  std::int64_t channels = 0, subscriptions = 0;
  std::uint64_t deliveries = 0, publications = 0;
  std::uint64_t replayed = 0, resumed = 0, not_recovered = 0, skipped = 0, overflows = 0,
                resyncs = 0;
  for (unsigned w = 0; w < channels_.workers(); ++w) {
    const auto& m = channels_.metrics(w);
    channels += m.channels.value();
    subscriptions += m.subscriptions.value();
    deliveries += m.deliveries.value();
    publications += m.publications.value();
    replayed += m.replayed.value();
    resumed += m.resumed.value();
    not_recovered += m.not_recovered.value();
    skipped += m.duplicates_skipped.value();
    overflows += m.recovery_overflows.value();
    resyncs += m.resyncs.value();
  }
  p.family("herald_channels", "gauge",
           "Channels with subscribers on this node (summed over workers)");
  p.sample("herald_channels", {}, channels);
  p.family("herald_subscriptions", "gauge", "Channel subscriptions on this node");
  p.sample("herald_subscriptions", {}, subscriptions);
  p.family("herald_deliveries_total", "counter", "Published messages queued to connections");
  p.sample("herald_deliveries_total", {}, deliveries);
  p.family("herald_publications_total", "counter",
           "Channel and broadcast publications handled (per worker)");
  p.sample("herald_publications_total", {}, publications);
  p.family("herald_history_replayed_total", "counter",
           "History publications sent to subscribers resuming from an offset");
  p.sample("herald_history_replayed_total", {}, replayed);
  p.family("herald_history_resumes_total", "counter", "Subscriptions resumed from an offset");
  p.sample("herald_history_resumes_total", {{"recovered", "true"}}, resumed);
  p.sample("herald_history_resumes_total", {{"recovered", "false"}}, not_recovered);
  p.family("herald_history_seam_duplicates_total", "counter",
           "Publications a resuming subscriber already had (not sent twice)");
  p.sample("herald_history_seam_duplicates_total", {}, skipped);
  p.family("herald_history_recovery_overflows_total", "counter",
           "Subscribers closed (1013) because live traffic outran their catch-up");
  p.sample("herald_history_recovery_overflows_total", {}, overflows);
  p.family("herald_history_resyncs_sent_total", "counter",
           "resync frames sent to subscribers: the channel's history was lost under them");
  p.sample("herald_history_resyncs_sent_total", {}, resyncs);

  // Admin API.
  static constexpr std::array<std::string_view, static_cast<std::size_t>(api::count)> api_names{
      "aws_connections", "publish", "connections", "users", "channels",
      "metrics",         "nodes",   "console",     "other"};
  p.family("herald_admin_requests_total", "counter", "Admin API requests, by API and status");
  for (std::size_t a = 0; a < api_names.size(); ++a) {
    for (std::size_t s = 0; s <= statuses.size(); ++s) {
      const std::uint64_t n = requests_[a][s].load(std::memory_order_relaxed);
      if (n == 0) continue;
      const std::string status = s < statuses.size() ? std::to_string(statuses[s]) : "other";
      p.sample("herald_admin_requests_total", {{"api", api_names[a]}, {"status", status}}, n);
    }
  }

  if (ctx_.cluster) ctx_.cluster->write_metrics(p);

  // The process.
  const auto ps = read_process_stats();
  p.family("process_cpu_seconds_total", "counter", "User and system CPU time");
  p.sample("process_cpu_seconds_total", {}, ps.cpu_seconds);
  p.family("process_resident_memory_bytes", "gauge", "Resident memory");
  p.sample("process_resident_memory_bytes", {}, ps.rss_bytes);
  p.family("process_virtual_memory_bytes", "gauge", "Virtual memory");
  p.sample("process_virtual_memory_bytes", {}, ps.virtual_bytes);
  p.family("process_open_fds", "gauge", "Open file descriptors");
  p.sample("process_open_fds", {}, ps.open_fds);
  p.family("process_max_fds", "gauge", "File descriptor limit");
  p.sample("process_max_fds", {}, ps.max_fds);
  p.family("process_start_time_seconds", "gauge", "Start time, seconds since the Unix epoch");
  p.sample("process_start_time_seconds", {}, static_cast<double>(started_) / 1000.0);
  return p.text();
}

}  // namespace herald::net
