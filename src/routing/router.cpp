#include "herald/routing/router.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>

#include <nlohmann/json.hpp>

#include "herald/common/json_input.hpp"
#include "herald/delivery/history.hpp"
#include "herald/protocol/client_frames.hpp"
#include "herald/ws/handshake.hpp"

namespace herald {
namespace {

using steady = std::chrono::steady_clock;

std::int64_t elapsed_ms(steady::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start).count();
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal server error";
    default:
      return status < 500 ? "Rejected" : "Internal server error";
  }
}

}  // namespace

router::router(const config& cfg, logger& log, integration_map integrations, dispatcher& dispatcher,
               backplane& backplane, unsigned workers)
    : cfg_(cfg),
      log_(log),
      dispatcher_(dispatcher),
      backplane_(backplane),
      integrations_(std::move(integrations)),
      selector_(cfg.routing.selection_expression),
      policy_(cfg.channels) {
  for (const auto& rc : cfg.routes) {
    const auto it = integrations_.find(rc.integration);
    if (it == integrations_.end()) {
      throw config_error("routes." + rc.key + ".integration",
                         "unknown integration \"" + rc.integration + "\"");
    }
    route_entry& r = routes_[rc.key];
    r.cfg = rc;
    r.target = it->second.get();
    for (unsigned i = 0; i < workers; ++i)
      r.metrics.push_back(std::make_unique<route_metrics>());
  }
  const auto find = [&](const char* key) -> const route_entry* {
    const auto it = routes_.find(key);
    return it == routes_.end() ? nullptr : &it->second;
  };
  connect_ = find("$connect");
  disconnect_ = find("$disconnect");
  default_ = find("$default");
  for (unsigned i = 0; i < workers; ++i)
    metrics_.push_back(std::make_unique<router_metrics>());
}

router::~router() = default;

std::int64_t router::inflight() const {
  std::int64_t total = 0;
  for (const auto& m : metrics_)
    total += m->inflight.value();
  return total;
}

const router::route_entry* router::lookup(const std::optional<std::string>& key) const {
  // Predefined keys are never selected by a message, only custom ones.
  if (key && !key->empty() && key->front() != '$') {
    if (const auto it = routes_.find(*key); it != routes_.end()) return &it->second;
  }
  return default_;
}

void router::heartbeat(connection& conn, const nlohmann::json& doc) {
  conn.send(make_message(protocol::heartbeat(protocol::request_id_json(doc))));
}

void router::channel_action(connection& conn, const nlohmann::json& doc, channel_verb verb) {
  auto& m = *metrics_[conn.info().worker];
  m.channel_actions.add();
  const auto reply = [&conn](std::string frame) { conn.send(make_message(std::move(frame))); };
  auto request = protocol::parse_channel_request(doc, verb);
  if (!request) {
    return reply(protocol::error("bad_request", "\"channel\" must be a string", "",
                                 protocol::request_id_json(doc)));
  }
  const std::string& requested = request->channel;
  const std::string& id_json = request->id_json;  // echoed so clients can match replies
  const bool inbox = requested == inbox_name;
  if (inbox) {
    // The connection's own inbox: needs the feature and a user; nobody publishes to it here.
    if (!cfg_.inbox.enabled)
      return reply(
          protocol::error("invalid_channel", "the inbox is not enabled", requested, id_json));
    if (conn.info().user_id().empty())
      return reply(protocol::error("forbidden", "the inbox belongs to authenticated users",
                                   requested, id_json));
    if (verb == channel_verb::publish || verb == channel_verb::presence)
      return reply(protocol::error("forbidden", "not allowed on the inbox", requested, id_json));
  } else if (const auto why = check_channel_name(requested, cfg_.channels.max_name_length)) {
    return reply(protocol::error("invalid_channel", *why, "", id_json));
  } else if (verb == channel_verb::ack) {
    return reply(
        protocol::error("bad_request", "only \"$inbox\" is acknowledged", requested, id_json));
  }
  const std::string name =
      inbox ? std::string(inbox_prefix).append(conn.info().user_id()) : std::string(requested);
  if (verb == channel_verb::unsubscribe) {
    dispatcher_.unsubscribe(conn, name);
    return reply(protocol::unsubscribed(requested, id_json));
  }
  if (request->field_error)
    return reply(protocol::error("bad_request", *request->field_error, requested, id_json));
  subscribe_options opts;
  if (verb == channel_verb::subscribe) {
    opts.since = request->since;
    opts.epoch = std::move(request->epoch);
    opts.from_ack = inbox;
  }
  if (verb == channel_verb::ack) {
    backplane_.ack(
        name, *request->since,
        [self = conn.shared_from_this(), requested, id_json](std::optional<std::uint64_t> acked) {
          self->send(make_message(
              acked ? protocol::acked(requested, id_json, *acked)
                    : protocol::error("unavailable",
                                      "the acknowledgement was not stored; send it again",
                                      requested, id_json)));
        });
    return;
  }
  if (inbox) return channel_go(conn.shared_from_this(), verb, name, {}, id_json, opts);
  const std::string& data_json = request->data_json;
  const connection_info& info = conn.info();
  // A presence query is allowed to whoever may subscribe.
  const auto decision =
      verb == channel_verb::publish ? policy_.publish(name, info) : policy_.subscribe(name, info);
  const auto deny = [this, &m, &info, &name, verb] {
    m.channel_denied.add();
    log_.info("channel.denied",
              {{"connectionId", info.id.view()},
               {"channel", name},
               {"action", verb == channel_verb::subscribe ? "subscribe" : "publish"}});
  };
  switch (decision.what) {
    case channel_policy::verdict::deny:
      deny();
      return reply(protocol::error("forbidden",
                                   verb == channel_verb::subscribe
                                       ? "not allowed to subscribe to this channel"
                                       : "not allowed to publish to this channel",
                                   name, id_json));
    case channel_policy::verdict::allow:
      return channel_go(conn.shared_from_this(), verb, name, data_json, id_json, opts);
    case channel_policy::verdict::ask:
      break;
  }
  // The rule's integration decides (2xx allows), with a SUBSCRIBE or PUBLISH event.
  const auto it = integrations_.find(decision.rule->integration);
  event_input in;
  in.type = verb == channel_verb::publish ? event_type::publish : event_type::subscribe;
  in.conn = &info;
  in.channel = name;
  in.body = data_json;
  const std::string request_id = make_request_id();
  auto self = conn.shared_from_this();
  // Everything the answer needs is copied: this runs after channel_action returned.
  invoke_channel_gate(
      it->second.get(), in, request_id,
      [this, &m, self, verb, name = std::string(name), data_json, id_json,
       opts](integration_result r) {
        const auto answer = [&](std::string frame) { self->send(make_message(std::move(frame))); };
        if (!r.ok) {
          return answer(protocol::error("internal_error", "the channel's authorization failed",
                                        name, id_json));
        }
        if (r.status < 200 || r.status >= 300) {
          m.channel_denied.add();
          log_.info("channel.denied",
                    {{"connectionId", self->id().view()},
                     {"channel", name},
                     {"action", verb == channel_verb::subscribe ? "subscribe" : "publish"},
                     {"status", r.status}});
          return answer(protocol::error("forbidden", "not allowed", name, id_json));
        }
        channel_go(self, verb, name, data_json, id_json, opts);
      });
}

void router::channel_go(const std::shared_ptr<connection>& conn, channel_verb verb,
                        const std::string& channel, const std::string& data_json,
                        const std::string& id_json, const subscribe_options& opts) {
  const std::string shown(display_channel(channel));
  const auto send = [conn](std::string frame) { conn->send(make_message(std::move(frame))); };
  if (verb == channel_verb::presence) {
    if (!find_presence_rule(cfg_, channel))
      return send(
          protocol::error("bad_request", "this channel does not track presence", shown, id_json));
    backplane_.presence(channel, cfg_.presence.max_members,
                        [send, shown, id_json](presence_result r) {
                          if (!r.ok)
                            return send(protocol::error("unavailable", r.error, shown, id_json));
                          std::vector<protocol::member> members;
                          members.reserve(r.members.size());
                          for (const auto& m : r.members)
                            members.push_back({m.connection_id, m.user_id});
                          send(protocol::presence(shown, members, r.truncated, id_json));
                        });
    return;
  }
  if (verb == channel_verb::publish) {
    // A client's publication reaches every subscriber, the sender too if subscribed.
    dispatcher_.publish(
        publication::message(target_kind::channel, channel, data_json),
        [send, shown, id_json](publish_outcome o) {
          if (o.stored && !o.store.ok) {
            return send(protocol::error(
                "unavailable", "the publication was not stored; send it again", shown, id_json));
          }
          std::optional<protocol::position> at;
          if (o.stored) at = protocol::position{o.store.offset, o.store.epoch};
          send(protocol::published(shown, id_json, at));
        });
    return;
  }
  if (log_.enabled(log_level::debug))
    log_.debug("channel.subscribe", {{"connectionId", conn->id().view()}, {"channel", channel}});
  dispatcher_.subscribe(
      *conn, channel, opts, [this, conn, send, shown, id_json](subscribe_result r) {
        if (log_.enabled(log_level::debug))
          log_.debug(
              "channel.subscribed",
              {{"connectionId", conn->id().view()}, {"offset", r.offset}, {"error", r.error}});
        switch (r.status) {
          case subscribe_status::ok: {
            protocol::subscribed_reply reply;
            if (r.history) {
              if (!r.epoch.empty() || r.error.empty())
                reply.at = protocol::position{r.offset, r.epoch};
              if (r.resumed) reply.recovered = r.recovered;
              reply.history_error = r.error;
            }
            return send(protocol::subscribed(shown, id_json, reply));
          }
          case subscribe_status::too_many:
            return send(protocol::error("too_many_subscriptions",
                                        "a connection may subscribe to " +
                                            std::to_string(cfg_.channels.max_per_connection) +
                                            " channels",
                                        shown, id_json));
          case subscribe_status::not_allowed:
            return send(protocol::error("forbidden", "not allowed to subscribe to this channel",
                                        shown, id_json));
          case subscribe_status::invalid_channel:
            return send(protocol::error("invalid_channel", "invalid channel name", shown, id_json));
        }
      });
}

void router::invoke_channel_gate(integration* gate, event_input in, const std::string& request_id,
                                 std::function<void(integration_result)> then) {
  const connection_info& info = *in.conn;
  auto& m = *metrics_[info.worker];
  in.route_key = in.type == event_type::subscribe ? "$subscribe" : "$publish";
  in.request_id = request_id;
  in.request_time = now_ms();
  in.routing = &cfg_.routing;
  const std::string event = gate->wants_event() ? build_event(in) : std::string();
  invocation inv;
  inv.type = in.type;
  inv.route_key = in.route_key;
  inv.request_id = request_id;
  inv.connection_id = info.id.view();
  inv.body = in.body;
  inv.event = event;
  inv.worker = info.worker;
  m.inflight.add(1);
  gate->invoke(inv, [this, &m, request_id, id = info.id, route = std::string(in.route_key),
                     start = steady::now(), then = std::move(then)](integration_result r) {
    m.inflight.add(-1);
    if (!r.ok) {
      m.failures.add();
      log_.warn("route.failed", {{"route", route},
                                 {"connectionId", id.view()},
                                 {"requestId", request_id},
                                 {"error", r.error},
                                 {"latency_ms", elapsed_ms(start)}});
    }
    then(std::move(r));
  });
}

void router::invoke_route(const route_entry& route, event_input in, const std::string& request_id,
                          std::function<void(integration_result)> then) {
  const connection_info& info = *in.conn;
  auto& m = *metrics_[info.worker];
  in.route_key = route.cfg.key;
  in.request_id = request_id;
  in.request_time = now_ms();
  in.routing = &cfg_.routing;
  const std::string event = route.target->wants_event() ? build_event(in) : std::string();
  invocation inv;
  inv.type = in.type;
  inv.route_key = route.cfg.key;
  inv.request_id = request_id;
  inv.connection_id = info.id.view();
  inv.body = in.body;
  inv.body_base64 = in.body_base64;
  inv.event = event;
  inv.worker = info.worker;
  if (log_.enabled(log_level::debug)) {
    log_.debug(
        "route.invoke",
        {{"connectionId", info.id.view()}, {"route", route.cfg.key}, {"requestId", request_id}});
  }
  auto& rm = *route.metrics[info.worker];
  m.invocations.add();
  rm.invocations.add();
  m.inflight.add(1);
  route.target->invoke(inv, [this, &m, &rm, &route, request_id, id = info.id, start = steady::now(),
                             then = std::move(then)](integration_result r) {
    m.inflight.add(-1);
    rm.latency.observe(std::chrono::duration<double>(steady::now() - start).count());
    if (!r.ok) {
      m.failures.add();
      rm.failures.add();
      log_.warn("route.failed", {{"route", route.cfg.key},
                                 {"connectionId", id.view()},
                                 {"requestId", request_id},
                                 {"error", r.error},
                                 {"latency_ms", elapsed_ms(start)}});
    }
    then(std::move(r));
  });
}

void router::on_connect(const connection_info& info, const connect_request& request,
                        const std::vector<std::string>& offered, connect_callback done) {
  if (!connect_) return done(connect_decision{});
  auto& m = *metrics_[info.worker];
  const std::string request_id = make_request_id();
  event_input in;
  in.type = event_type::connect;
  in.conn = &info;
  in.request = &request;
  invoke_route(*connect_, in, request_id,
               [this, &m, done = std::move(done), offered, request_id, id = info.id,
                ip = std::string(info.source_ip())](integration_result r) {
                 connect_decision d;
                 if (!r.ok) {
                   d.accept = false;
                   d.status = 500;
                   d.content_type = "application/json";
                   d.body = R"({"message":"Internal server error"})";
                   return done(std::move(d));
                 }
                 if (r.status < 200 || r.status >= 300) {
                   m.connects_rejected.add();
                   log_.info("connection.rejected", {{"connectionId", id.view()},
                                                     {"sourceIp", ip},
                                                     {"status", r.status},
                                                     {"requestId", request_id}});
                   d.accept = false;
                   d.status = r.status;
                   d.content_type = std::string(find_header(r.headers, "Content-Type"));
                   d.body = std::move(r.body);
                   if (d.body.empty()) {
                     d.content_type = "application/json";
                     d.body = nlohmann::json{{"message", reason_phrase(r.status)}}.dump();
                   }
                   return done(std::move(d));
                 }
                 // Accepted. The integration may pick the subprotocol (one the client offered) and,
                 // as a Herald extension, name the user this connection belongs to.
                 const std::string_view proto = find_header(r.headers, "Sec-WebSocket-Protocol");
                 if (!proto.empty()) {
                   if (std::find(offered.begin(), offered.end(), proto) != offered.end()) {
                     d.subprotocol = std::string(proto);
                   } else {
                     log_.warn("route.bad_subprotocol",
                               {{"connectionId", id.view()}, {"subprotocol", proto}});
                   }
                 }
                 if (!r.principal_id.empty() || !r.context.empty()) {
                   auto ctx = std::make_shared<string_pairs>();
                   if (!r.principal_id.empty()) ctx->emplace_back("principalId", r.principal_id);
                   for (auto& kv : r.context)
                     ctx->push_back(std::move(kv));
                   d.authorizer = std::move(ctx);
                 }
                 const std::string_view user = find_header(r.headers, "X-Herald-User-Id");
                 if (!user.empty()) {
                   if (valid_user_id(user)) {
                     d.user_id = std::string(user);
                   } else {
                     log_.warn("route.bad_user_id", {{"connectionId", id.view()}});
                   }
                 }
                 done(std::move(d));
               });
}

void router::on_open(const std::shared_ptr<connection>& conn) {
  dispatcher_.on_open(*conn);
}

void router::on_message(connection& conn, std::string_view payload, bool binary) {
  const connection_info& info = conn.info();
  // The body is parsed once, with the nesting bounded (limits.json_max_depth), when Herald has
  // to read it: to select the route, or for one of its own actions. A static selection
  // expression never looks inside a message on its way to a backend.
  nlohmann::json doc;
  json_status parsed = json_status::invalid;
  bool read = false;
  const auto parse = [&] {
    if (!read) doc = parse_json(payload, cfg_.limits.json_max_depth, &parsed);
    read = true;
    return parsed;
  };
  const auto too_deep = [&] {
    metrics_[info.worker]->refused.add();
    log_.info(
        "message.refused",
        {{"connectionId", info.id.view()}, {"reason", "too_deep"}, {"bytes", payload.size()}});
    conn.send(make_message(protocol::error(
        "bad_request",
        "message nested deeper than " + std::to_string(cfg_.limits.json_max_depth) + " levels")));
  };
  std::optional<std::string> key;
  if (!binary) {
    if (selector_.is_static()) {
      key = selector_.static_key();
    } else {
      if (parse() == json_status::too_deep) return too_deep();
      key = selector_.select(doc);
    }
  }
  if (key && !key->empty()) {
    const auto& ch = cfg_.channels;
    const auto builtin = [&](auto&& handle) {
      if (parse() == json_status::too_deep) return too_deep();
      handle();
    };
    if (*key == cfg_.websocket.heartbeat_action) return builtin([&] { heartbeat(conn, doc); });
    std::optional<channel_verb> verb;
    if (*key == ch.subscribe_action)
      verb = channel_verb::subscribe;
    else if (*key == ch.unsubscribe_action)
      verb = channel_verb::unsubscribe;
    else if (*key == ch.publish_action)
      verb = channel_verb::publish;
    else if (*key == cfg_.inbox.ack_action && cfg_.inbox.enabled)
      verb = channel_verb::ack;
    else if (*key == cfg_.presence.action && !cfg_.presence.rules.empty())
      verb = channel_verb::presence;
    if (verb) return builtin([&] { channel_action(conn, doc, *verb); });
  }
  const std::string request_id = make_request_id();
  const route_entry* route = lookup(key);
  if (!route) {
    // No matching route and no $default: AWS answers with a Forbidden frame and keeps the socket.
    metrics_[info.worker]->forbidden.add();
    conn.send(make_message(protocol::gateway_error("Forbidden", info.id.view(), request_id)));
    return;
  }
  const std::string message_id = make_request_id();
  event_input in;
  in.type = event_type::message;
  in.conn = &info;
  in.message_id = message_id;
  in.body = payload;
  in.body_base64 = binary;
  conn.begin_request();
  invoke_route(*route, in, request_id,
               [route, request_id, self = conn.shared_from_this()](integration_result r) {
                 self->end_request();
                 if (!r.ok && r.ack) {
                   // Store-first: the client is told its message was not stored.
                   self->send(make_message(std::move(r.body)));
                   return;
                 }
                 if (!r.ok) {
                   self->send(make_message(protocol::gateway_error("Internal server error",
                                                                   self->id().view(), request_id)));
                   return;
                 }
                 // Two-way routes send the integration's answer back; one-way routes send nothing.
                 if ((route->cfg.response || r.ack) && r.has_body) {
                   self->send(make_message(std::move(r.body)), r.binary);
                 }
               });
}

void router::on_close(connection& conn, std::uint16_t code, std::string_view reason) {
  dispatcher_.on_close(conn);
  if (!disconnect_) return;
  event_input in;
  in.type = event_type::disconnect;
  in.conn = &conn.info();
  in.disconnect_code = code;
  in.disconnect_reason = reason;
  // The answer is ignored (the socket is gone); failures are logged by invoke_route.
  invoke_route(*disconnect_, in, make_request_id(), [](integration_result) {});
}

}  // namespace herald
