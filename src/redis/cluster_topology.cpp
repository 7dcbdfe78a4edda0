// A Redis Cluster: commands routed by slot (cluster_client), sharded pub/sub on each channel's
// shard (cluster_subscriber), the function library on every primary.
#include <hiredis/hiredis.h>

#include "redis/cluster_client.hpp"
#include "redis/cluster_subscriber.hpp"
#include "redis/redis_topology.hpp"

namespace herald::redis {
namespace {

class cluster_topology final : public redis_topology {
 public:
  cluster_topology(const redis_config& rc, asio::io_context& ioc, logger& log, events ev,
                   redis_connection::options o)
      : redis_topology(true),
        rc_(rc),
        ioc_(ioc),
        log_(log),
        ev_(std::move(ev)),
        options_(std::move(o)) {
    options_.endpoint.db = 0;
  }

  void start() override {
    cluster_client::options co;
    for (const auto& a : rc_.cluster.addresses) {
      const auto ep = parse_endpoint(a);
      endpoint seed = options_.endpoint;
      seed.host = ep.host;
      seed.port = ep.port;
      co.seeds.push_back(std::move(seed));
    }
    co.node = options_;
    cluster_client::callbacks cb;
    cb.on_ready = [this] {
      log_.info("backplane.connected", {{"connection", "command"}, {"redis", describe()}});
      ev_.commands_up();
    };
    cb.on_lost = [this](const std::string& why) {
      if (stopped_) return;
      stats_.disconnects.fetch_add(1, std::memory_order_relaxed);
      log_.warn("backplane.lost", {{"connection", "command"}, {"error", why}});
      ev_.commands_down(why);
    };
    cb.on_topology = [this](const cluster_map& map) {
      stats_.refreshes = client_->refreshes();
      stats_.redirects = client_->redirects();
      if (shards_) shards_->place(map);
      std::string primaries;
      for (const cluster_node* p : map.primaries())
        primaries += p->address() + " ";
      // A primary we have not seen (a failover, a node added) gets the function library; the
      // first map is followed by commands_up, which loads it everywhere.
      const bool changed = !primaries_.empty() && primaries != primaries_;
      primaries_ = std::move(primaries);
      if (changed) ev_.new_primary();
    };
    client_ = std::make_shared<cluster_client>(ioc_, std::move(co), std::move(cb));
    cluster_subscriber::callbacks sc;
    sc.on_message = [this](std::string_view channel, std::string_view payload) {
      ev_.message(channel, payload);
    };
    sc.on_subscribed = [this](const std::string& name) { ev_.subscribed(name); };
    sc.on_interrupted = [this](const std::string& name) { ev_.interrupted(name); };
    sc.need_topology = [this] {
      if (client_) client_->refresh();
    };
    shards_ = std::make_shared<cluster_subscriber>(ioc_, options_, std::move(sc));
    // Each channel is subscribed on its own shard as soon as the map says where.
    ev_.subscriber_up();
    client_->start();
  }

  void stop() override {
    stopped_ = true;
    if (client_) client_->stop();
    if (shards_) shards_->stop();
  }

  std::string describe() const override {
    std::string out = std::string(options_.endpoint.tls ? "rediss" : "redis") + "-cluster://";
    for (std::size_t i = 0; i < rc_.cluster.addresses.size(); ++i)
      out += (i ? "," : "") + rc_.cluster.addresses[i];
    return out;
  }

  bool commands_ready() const override { return client_ && client_->ready(); }

  // Sent even while one shard is away: the others serve their slots, and a command for the
  // missing one waits for its new primary up to redis.command_timeout, then gets no answer.
  bool command(const std::string& key, std::vector<std::string> args,
               std::function<void(reply_view)> done) override {
    if (stopped_ || !client_) return false;
    client_->command(key, std::move(args), std::move(done));
    return true;
  }

  // The keys live in different slots: a GET each, gathered in order.
  void get(std::vector<std::string> keys,
           std::function<void(std::optional<std::vector<std::string>>)> done) override {
    if (keys.empty()) return done(std::vector<std::string>{});
    struct gather {
      std::vector<std::string> values;
      std::size_t pending = 0;
      std::function<void(std::optional<std::vector<std::string>>)> done;
    };
    auto g = std::make_shared<gather>();
    g->values.resize(keys.size());
    g->pending = keys.size();
    g->done = std::move(done);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const auto got = [g, i](reply_view r) {
        if (r && r->type == REDIS_REPLY_STRING) g->values[i] = std::string(r->str, r->len);
        if (--g->pending == 0) g->done(std::move(g->values));
      };
      if (!command(keys[i], {"GET", keys[i]}, got)) got(nullptr);
    }
  }

  void on_every_primary(std::vector<std::string> args,
                        std::function<void(std::size_t)> done) override {
    if (!client_) return done(1);
    client_->on_each_primary(std::move(args),
                             [done](std::size_t, std::size_t failed) { done(failed); });
  }

  void subscribe(const std::vector<std::string>& channels) override {
    for (const auto& c : channels)
      shards_->subscribe(c);
  }

  void unsubscribe(const std::vector<std::string>& channels) override {
    for (const auto& c : channels) {
      shards_->unsubscribe(c);  // the subscriber follows the SUNSUBSCRIBE's confirmation
      ev_.unsubscribed(c);
    }
  }

  void restart_subscriptions(const std::string&) override {
    if (shards_) shards_->restart();
  }

  // Per-primary connections come and go with the topology; their refusals are not summed.
  std::vector<std::pair<std::string, std::uint64_t>> refused() const override { return {}; }

 private:
  const redis_config& rc_;
  asio::io_context& ioc_;
  logger& log_;
  events ev_;
  redis_connection::options options_;
  std::shared_ptr<cluster_client> client_;
  std::shared_ptr<cluster_subscriber> shards_;
  std::string primaries_;  // the primaries when the topology was last read
  bool stopped_ = false;
};

}  // namespace

std::unique_ptr<redis_topology> make_cluster_topology(const redis_config& rc, asio::io_context& ioc,
                                                      logger& log, redis_topology::events ev,
                                                      redis_connection::options o) {
  return std::make_unique<cluster_topology>(rc, ioc, log, std::move(ev), std::move(o));
}

}  // namespace herald::redis
