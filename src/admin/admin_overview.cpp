// The admin API's read views for operators (and the built-in console, web/console/): this node,
// the cluster's nodes, and the channels with subscribers here. Everything else the console
// shows comes from the endpoints in admin_api.cpp.
#include <algorithm>

#include <nlohmann/json.hpp>

#include "admin/admin_api.hpp"
#include "herald/common/json_input.hpp"
#include "herald/delivery/history.hpp"
#include "herald/routing/event.hpp"
#include "herald/version.hpp"
#include "net/worker.hpp"

namespace herald::net {

using nlohmann::json;

std::string admin_api::node_summary() const {
  return summary_document().dump();
}

json admin_api::summary_document() const {
  std::uint64_t in = 0, out = 0, opened = 0, dropped = 0, throttled = 0, slow = 0, rejected = 0;
  for (const auto& w : ctx_.workers) {
    const auto& m = w->metrics();
    in += m.messages_in.value();
    out += m.messages_out.value();
    opened += m.connections_opened.value();
    dropped += m.send_queue_dropped.value();
    throttled += m.messages_throttled.value();
    slow += m.send_queue_overflow_closes.value() + m.write_timeouts.value();
    for (const auto& r : m.handshakes_rejected)
      rejected += r.value();
  }
  std::uint64_t deliveries = 0, publications = 0;
  for (unsigned w = 0; w < dispatcher_.workers(); ++w) {
    deliveries += dispatcher_.metrics(w).deliveries.value();
    publications += dispatcher_.metrics(w).publications.value();
  }
  const system_time_ms now = now_ms();
  return {{"nodeId", ctx_.cfg.node_id},
          {"version", herald::version},
          {"startedAt", iso8601(started_)},
          {"uptimeSeconds", (now - started_) / 1000},
          {"connections", ctx_.registry.size()},
          {"counters",
           {{"messagesIn", in},
            {"messagesOut", out},
            {"deliveries", deliveries},
            {"publications", publications},
            {"connectionsOpened", opened},
            {"sendQueueDropped", dropped},
            {"throttled", throttled},
            {"slowConsumerCloses", slow},
            {"handshakesRejected", rejected}}},
          {"at", now}};
}

void admin_api::get_node(const http_responder& done) {
  json body = summary_document();
  const auto reasons = readiness_reasons(ctx_);
  body["ready"] = reasons.empty();
  body["reasons"] = reasons;
  const backplane_status s = backplane_.status();
  body["backplane"] = {
      {"kind", s.kind}, {"up", s.up}, {"reason", s.reason}, {"outageSeconds", s.outage_seconds}};
  done(json_response(http::status::ok, body.dump()));
}

void admin_api::list_nodes(const http_responder& done) {
  backplane_.nodes([this, done](std::vector<node_entry> entries) {
    json nodes = json::array();
    bool self_listed = false;
    for (const auto& e : entries) {
      // This node's own figures are read now, not from its last refresh.
      const bool self = e.node == ctx_.cfg.node_id;
      json n =
          self ? summary_document() : parse_json(e.summary_json, ctx_.cfg.limits.json_max_depth);
      if (!n.is_object()) n = json::object();
      n["nodeId"] = e.node;
      n["self"] = self;
      n["refreshedAt"] = iso8601(self ? now_ms() : e.at);
      self_listed = self_listed || self;
      nodes.push_back(std::move(n));
    }
    if (!self_listed) {
      // A single node, or this one not (yet) registered in Redis.
      json n = summary_document();
      n["self"] = true;
      n["refreshedAt"] = iso8601(now_ms());
      nodes.push_back(std::move(n));
    }
    std::sort(nodes.begin(), nodes.end(), [](const json& a, const json& b) {
      return a.value("nodeId", "") < b.value("nodeId", "");
    });
    done(json_response(http::status::ok, json{{"nodes", nodes}}.dump()));
  });
}

void admin_api::list_channels(const http_request& req, const http_responder& done) {
  const auto limit = query_count(req.target(), "limit", 100, 1, 1000);
  const auto offset = query_count(req.target(), "offset", 0, 0, 100'000'000);
  if (!limit || !offset)
    return done(json_error(http::status::bad_request, "bad_request",
                           "limit must be 1 to 1000 and offset a non-negative integer"));
  const std::string q = query_value(req.target(), "q");
  dispatcher_.channel_counts({}, [this, done, limit = *limit, offset = *offset,
                                  q](std::vector<std::pair<std::string, std::size_t>> counts) {
    // The inbox's internal names are not channels anyone subscribes to by name.
    std::erase_if(counts, [&q](const auto& c) {
      return c.first.starts_with(inbox_prefix) ||
             (!q.empty() && c.first.find(q) == std::string::npos);
    });
    // Busiest first, then by name: a stable order to page through.
    const std::size_t end = std::min(counts.size(), offset + limit);
    std::partial_sort(counts.begin(), counts.begin() + static_cast<std::ptrdiff_t>(end),
                      counts.end(), [](const auto& a, const auto& b) {
                        return a.second != b.second ? a.second > b.second : a.first < b.first;
                      });
    json list = json::array();
    for (std::size_t i = offset; i < end; ++i) {
      list.push_back({{"channel", counts[i].first},
                      {"subscribers", counts[i].second},
                      {"history", find_history_rule(ctx_.cfg, counts[i].first) != nullptr},
                      {"presence", find_presence_rule(ctx_.cfg, counts[i].first) != nullptr}});
    }
    done(json_response(
        http::status::ok,
        json{{"channels", list}, {"count", counts.size()}, {"offset", offset}}.dump()));
  });
}

void admin_api::get_channel(std::string_view channel_text, const http_responder& done) {
  const std::string channel(channel_text);
  dispatcher_.channel_counts(
      channel, [this, done, channel](std::vector<std::pair<std::string, std::size_t>> counts) {
        const std::size_t subscribers = counts.empty() ? 0 : counts.front().second;
        json body = {{"channel", channel},
                     {"subscribers", subscribers},
                     {"presence", find_presence_rule(ctx_.cfg, channel) != nullptr}};
        const history_rule* rule = find_history_rule(ctx_.cfg, channel);
        if (!rule) {
          body["history"] = nullptr;
          return done(json_response(http::status::ok, body.dump()));
        }
        // The oldest retained publication tells the size: offsets are contiguous, trimmed from the
        // front (by size or age).
        history_query q;
        q.channel = channel;
        q.since = 0;
        q.limit = 1;
        backplane_.read_history(q, *rule, 0, [done, body, rule](history_page page) mutable {
          if (!page.ok) {
            body["history"] = {{"error", page.error}};
          } else {
            const std::uint64_t oldest = page.entries.empty() ? 0 : page.entries.front().offset;
            body["history"] = {
                {"epoch", page.epoch},    {"offset", page.top},
                {"oldest", oldest},       {"size", oldest == 0 ? 0 : page.top - oldest + 1},
                {"capacity", rule->size}, {"ttlSeconds", rule->ttl.count() / 1000}};
          }
          done(json_response(http::status::ok, body.dump()));
        });
      });
}

}  // namespace herald::net
