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

publication publication::message(target_kind kind, std::string target, std::string data_json,
                                 std::string id) {
  publication p;
  p.kind = kind;
  p.payload = std::make_shared<const std::string>(dispatcher::message_frame(
      kind == target_kind::channel ? target : std::string(), data_json, id));
  p.target = std::move(target);
  p.data_json = std::move(data_json);
  p.id = std::move(id);
  return p;
}

struct dispatcher::worker_state {
  basic_topic_index<connection> topics;
  std::vector<connection*> all;                        // every open connection on this worker
  std::unordered_map<connection*, std::size_t> pos;    // index in `all`
  std::unordered_map<std::string, std::size_t> users;  // user -> connections on this worker
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
  const std::string& user = conn.info().user_id;
  if (!user.empty() && w.users[user]++ == 0) cluster_->user_added(user);
  cluster_->connection_opened(conn);
}

void dispatcher::on_close(connection& conn) {
  auto& w = *workers_[conn.info().worker];
  const std::size_t before = w.topics.subscription_count(&conn);
  w.topics.remove(&conn, [&](const std::string& channel) {
    w.metrics.channels.add(-1);
    cluster_->channel_removed(channel);
  });
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
  const std::string& user = conn.info().user_id;
  if (!user.empty()) {
    const auto u = w.users.find(user);
    if (u != w.users.end() && --u->second == 0) {
      w.users.erase(u);
      cluster_->user_removed(user);
    }
  }
  cluster_->connection_closed(conn);
}

void dispatcher::subscribe(connection& conn, std::string_view channel,
                           std::function<void(subscribe_status)> done) {
  if (check_channel(channel, cfg_.channels.max_name_length))
    return done(subscribe_status::invalid_channel);
  const unsigned worker = conn.info().worker;
  auto& w = *workers_[worker];
  if (w.topics.subscribed(channel, &conn)) return done(subscribe_status::ok);
  if (w.topics.subscription_count(&conn) >= cfg_.channels.max_per_connection) {
    return done(subscribe_status::too_many);
  }
  const auto change = w.topics.subscribe(channel, &conn);
  w.metrics.subscriptions.add(1);
  if (!change.channel_edge) return done(subscribe_status::ok);
  // The first subscriber on this worker: the cluster must start sending the channel here.
  w.metrics.channels.add(1);
  cluster_->channel_added(std::string(channel), worker,
                          [done = std::move(done)] { done(subscribe_status::ok); });
}

void dispatcher::unsubscribe(connection& conn, std::string_view channel) {
  auto& w = *workers_[conn.info().worker];
  const auto change = w.topics.unsubscribe(channel, &conn);
  if (!change.changed) return;
  w.metrics.subscriptions.add(-1);
  if (!change.channel_edge) return;
  w.metrics.channels.add(-1);
  cluster_->channel_removed(std::string(channel));
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

// One post per worker; the last one to finish reports the total.
void dispatcher::fan_out(std::shared_ptr<const publication> p,
                         std::function<void(std::size_t)> done) {
  struct gather {
    std::function<void(std::size_t)> done;
    std::atomic<std::size_t> recipients{0};
    std::atomic<unsigned> pending;
  };
  auto g = std::make_shared<gather>();
  g->done = std::move(done);
  g->pending = static_cast<unsigned>(workers_.size());
  for (unsigned i = 0; i < workers_.size(); ++i) {
    post_(i, [this, g, p, i] {
      g->recipients.fetch_add(deliver_local(*workers_[i], *p), std::memory_order_relaxed);
      if (g->pending.fetch_sub(1, std::memory_order_acq_rel) == 1 && g->done)
        g->done(g->recipients.load());
    });
  }
}

void dispatcher::publish(publication p, std::function<void(std::size_t, bool)> done) {
  switch (p.kind) {
    case target_kind::connection: {
      const auto id = connection_id::parse(p.target);
      if (!id) return done(0, false);
      if (auto c = registry_.find(*id)) {
        if (c->id().view() == p.exclude) return done(0, false);
        return done(c->send(std::move(p.payload), p.binary) == send_result::queued ? 1 : 0, false);
      }
      // Not here: perhaps on another node.
      // The id is copied first: the lambda below moves `p`, and argument order is unspecified.
      std::string target = p.target;
      cluster_->locate(target, [this, p = std::move(p),
                                done = std::move(done)](std::optional<remote_connection> where) {
        if (!where) return done(0, false);
        cluster_->send_remote(*where, p.payload, p.binary, [done](remote_result r) {
          done(r == remote_result::queued ? 1 : 0, true);
        });
      });
      return;
    }
    case target_kind::user: {
      std::size_t n = 0;
      for (const auto& c : registry_.find_user(p.target)) {
        if (c->id().view() == p.exclude) continue;
        n += c->send(p.payload, p.binary) == send_result::queued ? 1 : 0;
      }
      return done(n, cluster_->forward(p));
    }
    case target_kind::channel:
    case target_kind::broadcast: {
      const bool forwarded = cluster_->forward(p);
      fan_out(std::make_shared<const publication>(std::move(p)),
              [done = std::move(done), forwarded](std::size_t n) { done(n, forwarded); });
      return;
    }
  }
}

void dispatcher::deliver_from_cluster(publication p) {
  if (p.kind == target_kind::user) {
    for (const auto& c : registry_.find_user(p.target)) {
      if (c->id().view() != p.exclude) c->send(p.payload, p.binary);
    }
    return;
  }
  if (p.kind == target_kind::connection) return;  // sent to one node directly, not through here
  fan_out(std::make_shared<const publication>(std::move(p)), {});
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

// Replies are rare (one per subscribe): built with nlohmann::ordered_json ("type" first).
std::string dispatcher::reply_frame(std::string_view type, std::string_view channel,
                                    std::string_view id_json) {
  nlohmann::ordered_json out = {{"type", type}, {"channel", channel}};
  if (!id_json.empty()) out["id"] = nlohmann::ordered_json::parse(id_json);
  return out.dump();
}

std::string dispatcher::error_reply(std::string_view code, std::string_view message,
                                    std::string_view channel, std::string_view id_json) {
  nlohmann::ordered_json out = {{"type", "error"}, {"code", code}, {"message", message}};
  if (!channel.empty()) out["channel"] = channel;
  if (!id_json.empty()) out["id"] = nlohmann::ordered_json::parse(id_json);
  return out.dump();
}

}  // namespace herald
