#include "herald/dispatcher.hpp"

#include <nlohmann/json.hpp>

#include "herald/log.hpp"

namespace herald {

std::string_view to_string(target_kind k) {
  switch (k) {
    case target_kind::connection:
      return "connection";
    case target_kind::user:
      return "user";
    case target_kind::channel:
      return "channel";
    case target_kind::broadcast:
      return "broadcast";
  }
  return "channel";
}

struct dispatcher::worker_state {
  basic_topic_index<connection> topics;
  std::vector<connection*> all;                      // every open connection on this worker
  std::unordered_map<connection*, std::size_t> pos;  // index in `all`
  dispatcher_metrics metrics;
};

dispatcher::dispatcher(const config& cfg, connection_registry& registry, unsigned workers,
                       worker_poster post)
    : cfg_(cfg), registry_(registry), post_(std::move(post)) {
  for (unsigned i = 0; i < workers; ++i)
    workers_.push_back(std::make_unique<worker_state>());
}

dispatcher::~dispatcher() = default;

const dispatcher_metrics& dispatcher::metrics(unsigned worker) const {
  return workers_[worker]->metrics;
}

void dispatcher::on_open(connection& conn) {
  auto& w = *workers_[conn.info().worker];
  w.pos.emplace(&conn, w.all.size());
  w.all.push_back(&conn);
}

void dispatcher::on_close(connection& conn) {
  auto& w = *workers_[conn.info().worker];
  const std::size_t before = w.topics.subscription_count(&conn);
  w.topics.remove(&conn, [&w](const std::string&) { w.metrics.channels.add(-1); });
  w.metrics.subscriptions.add(-static_cast<std::int64_t>(before));
  const auto it = w.pos.find(&conn);
  if (it == w.pos.end()) return;
  const std::size_t i = it->second;
  w.pos.erase(it);
  if (i + 1 != w.all.size()) {
    w.all[i] = w.all.back();
    w.pos[w.all[i]] = i;
  }
  w.all.pop_back();
}

subscribe_status dispatcher::subscribe(connection& conn, std::string_view channel) {
  if (check_channel(channel, cfg_.channels.max_name_length))
    return subscribe_status::invalid_channel;
  auto& w = *workers_[conn.info().worker];
  if (w.topics.subscribed(channel, &conn)) return subscribe_status::ok;
  if (w.topics.subscription_count(&conn) >= cfg_.channels.max_per_connection) {
    return subscribe_status::too_many;
  }
  const auto change = w.topics.subscribe(channel, &conn);
  w.metrics.subscriptions.add(1);
  if (change.channel_edge) w.metrics.channels.add(1);
  return subscribe_status::ok;
}

void dispatcher::unsubscribe(connection& conn, std::string_view channel) {
  auto& w = *workers_[conn.info().worker];
  const auto change = w.topics.unsubscribe(channel, &conn);
  if (!change.changed) return;
  w.metrics.subscriptions.add(-1);
  if (change.channel_edge) w.metrics.channels.add(-1);
}

std::vector<std::string> dispatcher::channels_of(const connection& conn) const {
  return workers_[conn.info().worker]->topics.channels_of(&conn);
}

std::size_t dispatcher::deliver_local(worker_state& w, const publication& p) {
  w.metrics.publications.add();
  std::size_t n = 0;
  const auto deliver = [&](connection* c) {
    if (!p.exclude.empty() && c->id().view() == p.exclude) return;
    if (c->send(p.payload, p.binary) == send_result::queued) ++n;
  };
  // No copy of the lists: send() on the owning thread only queues (a connection it decides to
  // close is finished later, from its own I/O handler), so the lists cannot change under us.
  if (p.kind == target_kind::channel) {
    for (auto* c : w.topics.subscribers(p.target))
      deliver(c);
  } else {
    for (auto* c : w.all)
      deliver(c);
  }
  w.metrics.deliveries.add(n);
  return n;
}

void dispatcher::publish(publication p, std::function<void(std::size_t)> done) {
  switch (p.kind) {
    case target_kind::connection: {
      std::size_t n = 0;
      if (const auto id = connection_id::parse(p.target)) {
        if (auto c = registry_.find(*id); c && c->id().view() != p.exclude) {
          n = c->send(std::move(p.payload), p.binary) == send_result::queued ? 1 : 0;
        }
      }
      return done(n);
    }
    case target_kind::user: {
      std::size_t n = 0;
      for (const auto& c : registry_.find_user(p.target)) {
        if (c->id().view() == p.exclude) continue;
        n += c->send(p.payload, p.binary) == send_result::queued ? 1 : 0;
      }
      return done(n);
    }
    case target_kind::channel:
    case target_kind::broadcast:
      break;
  }
  // One post per worker; the last one to finish reports the total.
  struct gather {
    publication p;
    std::function<void(std::size_t)> done;
    std::atomic<std::size_t> recipients{0};
    std::atomic<unsigned> pending;
  };
  auto g = std::make_shared<gather>();
  g->p = std::move(p);
  g->done = std::move(done);
  g->pending = static_cast<unsigned>(workers_.size());
  for (unsigned i = 0; i < workers_.size(); ++i) {
    post_(i, [this, g, i] {
      g->recipients.fetch_add(deliver_local(*workers_[i], g->p), std::memory_order_relaxed);
      if (g->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) g->done(g->recipients.load());
    });
  }
}

std::optional<std::string> dispatcher::check_channel(std::string_view name,
                                                     std::size_t max_length) {
  if (name.empty()) return "channel name is empty";
  if (name.size() > max_length)
    return "channel name is longer than " + std::to_string(max_length) + " bytes";
  static constexpr std::string_view extra = "._-:@/=+";
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    extra.find(c) != std::string_view::npos;
    if (!ok) return "channel names may contain only A-Z a-z 0-9 and . _ - : @ / = +";
  }
  return std::nullopt;
}

std::string dispatcher::message_frame(std::string_view channel, std::string_view data_json,
                                      std::string_view id) {
  std::string out;
  out.reserve(48 + channel.size() + data_json.size() + id.size());
  out += R"({"type":"message")";
  if (!channel.empty()) {
    out += R"(,"channel":")";
    append_json_escaped(out, channel);
    out += '"';
  }
  if (!id.empty()) {
    out += R"(,"id":")";
    append_json_escaped(out, id);
    out += '"';
  }
  out += R"(,"data":)";
  out += data_json;
  out += '}';
  return out;
}

// Replies are rare (one per subscribe): built with nlohmann::json for clarity.
std::string dispatcher::reply_frame(std::string_view type, std::string_view channel,
                                    std::string_view id_json) {
  nlohmann::json out = {{"type", type}, {"channel", channel}};
  if (!id_json.empty()) out["id"] = nlohmann::json::parse(id_json);
  return out.dump();
}

std::string dispatcher::error_reply(std::string_view code, std::string_view message,
                                    std::string_view channel, std::string_view id_json) {
  nlohmann::json out = {{"type", "error"}, {"code", code}, {"message", message}};
  if (!channel.empty()) out["channel"] = channel;
  if (!id_json.empty()) out["id"] = nlohmann::json::parse(id_json);
  return out.dump();
}

}  // namespace herald
