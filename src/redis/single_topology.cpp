// One Redis server (plain, TLS or a Unix socket), or the primary Redis Sentinel names: a
// command connection and a subscriber connection, each reconnecting with exponential backoff
// and full jitter; with Sentinel, a watcher on +switch-master that reconnects both at once.
#include <hiredis/hiredis.h>

#include <random>
#include <sstream>

#include <boost/asio/steady_timer.hpp>

#include "redis/redis_topology.hpp"

namespace herald::redis {
namespace {

std::string string_of(reply_view r) {
  return r && r->str ? std::string(r->str, r->len) : std::string();
}

class single_topology final : public redis_topology {
 public:
  single_topology(const redis_config& rc, asio::io_context& ioc, logger& log, events ev,
                  redis_connection::options o)
      : redis_topology(false),
        rc_(rc),
        ioc_(ioc),
        log_(log),
        ev_(std::move(ev)),
        options_(std::move(o)),
        watch_timer_(ioc),
        rng_(std::random_device{}()) {}

  void start() override {
    cmd_ = make(false);
    sub_ = make(true);
    cmd_->start();
    sub_->start();
    watch_sentinels();
  }

  void stop() override {
    stopped_ = true;
    watch_timer_.cancel();
    if (watch_) watch_->stop();
    for (auto& t : reconnect_timers_)
      if (t) t->cancel();
    if (cmd_) cmd_->stop();
    if (sub_) sub_->stop();
  }

  std::string describe() const override {
    if (options_.sentinels.empty()) return options_.endpoint.describe();
    std::string out = "sentinel:" + options_.master_name + "@";
    for (std::size_t i = 0; i < options_.sentinels.size(); ++i)
      out += (i ? "," : "") + options_.sentinels[i].host + ":" +
             std::to_string(options_.sentinels[i].port);
    return out;
  }

  bool commands_ready() const override { return cmd_ && cmd_->ready(); }

  bool command(const std::string&, std::vector<std::string> args,
               std::function<void(reply_view)> done) override {
    return cmd_ && cmd_->command(std::move(args), std::move(done));
  }

  void get(std::vector<std::string> keys,
           std::function<void(std::optional<std::vector<std::string>>)> done) override {
    if (keys.empty()) return done(std::vector<std::string>{});
    std::vector<std::string> args{"MGET"};
    args.insert(args.end(), keys.begin(), keys.end());
    const bool sent = command(keys.front(), std::move(args), [done](reply_view r) {
      if (!r || r->type != REDIS_REPLY_ARRAY) return done(std::nullopt);
      std::vector<std::string> out;
      for (std::size_t i = 0; i < r->elements; ++i)
        out.push_back(string_of(r->element[i]));
      done(std::move(out));
    });
    if (!sent) done(std::nullopt);
  }

  void on_every_primary(std::vector<std::string> args,
                        std::function<void(std::size_t)> done) override {
    const bool sent = command("", std::move(args), [done](reply_view r) {
      done(r && r->type != REDIS_REPLY_ERROR ? 0 : 1);
    });
    if (!sent) done(1);
  }

  void subscribe(const std::vector<std::string>& channels) override {
    batches(channels, [this](std::vector<std::string> b) { sub_->subscribe(std::move(b)); });
  }

  void unsubscribe(const std::vector<std::string>& channels) override {
    batches(channels, [this](std::vector<std::string> b) { sub_->unsubscribe(std::move(b)); });
  }

  void restart_subscriptions(const std::string& why) override {
    if (!sub_ || !sub_->ready()) return;  // reconnecting already
    sub_->stop();
    lost(true, why);
  }

  std::vector<std::pair<std::string, std::uint64_t>> refused() const override {
    return {{"command", cmd_ ? cmd_->refused() : 0}, {"subscriber", sub_ ? sub_->refused() : 0}};
  }

 private:
  // Up to 512 channels per SUBSCRIBE / UNSUBSCRIBE.
  template <class Fn>
  static void batches(const std::vector<std::string>& channels, Fn&& send) {
    constexpr std::size_t batch = 512;
    for (std::size_t i = 0; i < channels.size(); i += batch) {
      send({channels.begin() + static_cast<long>(i),
            channels.begin() + static_cast<long>(std::min(channels.size(), i + batch))});
    }
  }

  std::shared_ptr<redis_connection> make(bool subscriber) {
    redis_connection::callbacks cb;
    cb.on_ready = [this, subscriber] { ready(subscriber); };
    cb.on_lost = [this, subscriber](const std::string& why) { lost(subscriber, why); };
    if (subscriber) cb.on_push = [this](reply_view r) { push(r); };
    return std::make_shared<redis_connection>(ioc_, options_, std::move(cb));
  }

  void ready(bool subscriber) {
    attempts_[subscriber] = 0;
    log_.info("backplane.connected", {{"connection", subscriber ? "subscriber" : "command"},
                                      {"redis", (subscriber ? sub_ : cmd_)->target().describe()}});
    if (subscriber) return ev_.subscriber_up();
    ev_.commands_up();
  }

  void lost(bool subscriber, const std::string& why) {
    if (stopped_) return;
    stats_.disconnects.fetch_add(1, std::memory_order_relaxed);
    if (subscriber) {
      ev_.subscriber_down(why);
    } else {
      ev_.commands_down(why);
    }
    unsigned& attempts = attempts_[subscriber];
    // Exponential backoff with full jitter, so nodes do not reconnect in lockstep.
    const auto cap =
        std::min<long long>(rc_.reconnect_max_backoff.count(), 100LL << std::min(attempts, 16u));
    const duration delay(std::uniform_int_distribution<long long>(cap / 2, cap)(rng_));
    ++attempts;
    log_.warn("backplane.lost", {{"connection", subscriber ? "subscriber" : "command"},
                                 {"error", why},
                                 {"retry_ms", delay.count()}});
    auto& timer = reconnect_timers_[subscriber];
    if (!timer) timer = std::make_shared<asio::steady_timer>(ioc_);
    timer->expires_after(delay);
    timer->async_wait([this, subscriber](boost::system::error_code ec) {
      if (ec || stopped_) return;
      stats_.reconnects.fetch_add(1, std::memory_order_relaxed);
      (subscriber ? sub_ : cmd_)->start();
    });
  }

  void push(reply_view r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
    const std::string kind = string_of(r->element[0]);
    const std::string name = string_of(r->element[1]);
    if (kind == "message")
      return ev_.message(name, std::string_view(r->element[2]->str, r->element[2]->len));
    if (kind == "subscribe") return ev_.subscribed(name);
    if (kind == "unsubscribe") ev_.unsubscribed(name);
  }

  // A subscriber on one Sentinel at a time, for +switch-master: a failover is acted on at once
  // (the old primary keeps answering for seconds after it), not when its socket finally drops.
  void watch_sentinels() {
    if (options_.sentinels.empty() || stopped_) return;
    redis_connection::options o;
    o.endpoint = options_.sentinels[watch_index_++ % options_.sentinels.size()];
    o.connect_timeout = o.command_timeout = options_.sentinel_timeout;
    o.tls = options_.tls;
    o.tls_verify = options_.tls_verify;
    redis_connection::callbacks cb;
    cb.on_ready = [this] { watch_->subscribe({"+switch-master"}); };
    cb.on_lost = [this](const std::string&) {
      if (stopped_) return;
      watch_timer_.expires_after(std::chrono::seconds(1));
      watch_timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec) watch_sentinels();
      });
    };
    cb.on_push = [this](reply_view r) {
      // ["message", "+switch-master", "<name> <old-ip> <old-port> <new-ip> <new-port>"]
      if (!r || r->elements != 3 || string_of(r->element[0]) != "message") return;
      std::istringstream in(string_of(r->element[2]));
      std::string name, old_ip, old_port, new_ip, new_port;
      in >> name >> old_ip >> old_port >> new_ip >> new_port;
      if (name != options_.master_name) return;
      stats_.failovers.fetch_add(1, std::memory_order_relaxed);
      log_.warn(
          "backplane.failover",
          {{"master", name}, {"from", old_ip + ":" + old_port}, {"to", new_ip + ":" + new_port}});
      const std::string why = "Sentinel: " + name + " failed over to " + new_ip + ":" + new_port;
      for (const bool subscriber : {false, true}) {
        auto& c = subscriber ? sub_ : cmd_;
        if (!c || !c->ready()) continue;  // already reconnecting: it asks the Sentinels anyway
        c->stop();
        lost(subscriber, why);
      }
    };
    watch_ = std::make_shared<redis_connection>(ioc_, std::move(o), std::move(cb));
    watch_->start();
  }

  const redis_config& rc_;
  asio::io_context& ioc_;
  logger& log_;
  events ev_;
  redis_connection::options options_;
  std::shared_ptr<redis_connection> cmd_;
  std::shared_ptr<redis_connection> sub_;
  std::shared_ptr<redis_connection> watch_;  // subscribed to +switch-master on one Sentinel
  asio::steady_timer watch_timer_;           // reconnects the Sentinel watcher
  std::size_t watch_index_ = 0;
  std::shared_ptr<asio::steady_timer> reconnect_timers_[2];
  unsigned attempts_[2] = {0, 0};
  std::mt19937_64 rng_;
  bool stopped_ = false;
};

}  // namespace

std::unique_ptr<redis_topology> make_single_topology(const redis_config& rc, asio::io_context& ioc,
                                                     logger& log, redis_topology::events ev,
                                                     redis_connection::options o) {
  return std::make_unique<single_topology>(rc, ioc, log, std::move(ev), std::move(o));
}

}  // namespace herald::redis
