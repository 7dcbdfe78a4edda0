// The Redis backplane: construction, the connections' life, status, metrics and liveness.
#include <sstream>

#include "redis/redis_backplane_impl.hpp"

namespace herald::redis {

redis_backplane::redis_backplane(const config& cfg, logger& log, connection_registry& registry,
                                 delivery deliver, worker_poster post)
    : cfg_(cfg),
      rc_(cfg.redis),
      names_{cfg.redis.key_prefix + ":", !cfg.redis.cluster.addresses.empty()},
      log_(log),
      registry_(registry),
      deliver_(std::move(deliver)),
      post_(std::move(post)),
      node_(cfg.node_id),
      prefix_(cfg.redis.key_prefix + ":"),
      fn_(names_for(cfg.redis.key_prefix)),
      library_(function_library(cfg)),
      settings_(history_settings(cfg)),
      guard_(ioc_.get_executor()),
      probe_timer_(ioc_),
      refresh_timer_(ioc_),
      alive_timer_(ioc_) {
  topology_ = make_topology(cfg, ioc_, log_, topology_events());
  history_sequencer::hooks h;
  h.read = [this](const std::string& channel, std::uint64_t since, std::size_t limit,
                  std::function<void(history_page)> done) {
    history_query q;
    q.channel = channel;
    q.since = since;
    q.limit = limit;
    read_page(q, std::move(done));
  };
  h.deliver = [this](publication p) { deliver_(std::move(p)); };
  h.later = [this](std::function<void()> fn) {
    auto timer = std::make_shared<asio::steady_timer>(ioc_, std::chrono::milliseconds(200));
    timer->async_wait([this, timer, fn = std::move(fn)](boost::system::error_code ec) {
      if (!ec && !stopped_) fn();
    });
  };
  h.subscribed = [this](const std::string& channel) {
    return state_of(names_.channel(channel)) == sub_state::subscribed;
  };
  history_ = std::make_unique<history_sequencer>(rc_.max_held_publications, log_, std::move(h));
  set_down("Redis backplane: connecting");
}

redis_backplane::~redis_backplane() {
  asio::post(ioc_, [this] { shutdown_connections(); });
  guard_.reset();
  if (thread_.joinable()) thread_.join();
}

void redis_backplane::start() {
  fixed_ = {names_.broadcast(), names_.control(), node_channel(node_)};
  for (const auto& c : fixed_)
    want_[c] = true;
  thread_ = std::thread([this] {
    log_.info("backplane.starting", {{"redis", topology_->describe()}});
    topology_->start();
    schedule_probe();
    schedule_refresh();
    schedule_alive();
    ioc_.run();
  });
}

redis_topology::events redis_backplane::topology_events() {
  redis_topology::events ev;
  ev.commands_up = [this] { commands_up(); };
  ev.commands_down = [this](const std::string& why) { commands_down(why); };
  ev.subscriber_up = [this] { subscriber_up(); };
  ev.subscriber_down = [this](const std::string& why) { subscriber_down(why); };
  ev.subscribed = [this](const std::string& name) { subscription_confirmed(name); };
  ev.unsubscribed = [this](const std::string& name) { unsubscription_confirmed(name); };
  ev.interrupted = [this](const std::string& name) { subscription_interrupted(name); };
  ev.message = [this](std::string_view channel, std::string_view payload) {
    on_message(std::string(channel), payload);
  };
  ev.new_primary = [this] {
    if (cmd_up_) load_functions();
  };
  return ev;
}

void redis_backplane::stop(std::function<void()> done) {
  asio::post(ioc_, [this, done = std::move(done)] {
    // Leave: this node's liveness key goes; connections removed themselves as they closed.
    if (commands_ready() && run(nodes_key(), {"ZREM", nodes_key(), node_}, [](reply_view) {}) &&
        run(alive_key(node_), {"DEL", alive_key(node_)}, [this, done](reply_view) {
          shutdown_connections();
          done();
        })) {
      return;
    }
    shutdown_connections();
    done();
  });
}

backplane_status redis_backplane::status() const {
  backplane_status s;
  {
    std::lock_guard lock(status_mutex_);
    s = status_;
  }
  s.kind = "redis";
  s.outage_seconds = outage_seconds();
  return s;
}

void redis_backplane::set_node_summary(std::function<std::string()> summary) {
  summary_ = std::move(summary);
}

std::vector<std::string> redis_backplane::live_nodes_command() const {
  const std::string since = std::to_string(now_ms() - rc_.node_ttl.count());
  return {"ZRANGEBYSCORE", nodes_key(), since, "+inf", "LIMIT", "0", std::to_string(kMaxNodes)};
}

void redis_backplane::nodes(std::function<void(std::vector<node_entry>)> done) {
  asio::post(ioc_, [this, done = std::move(done)] {
    const bool sent = run(nodes_key(), live_nodes_command(), [this, done](reply_view r) {
      if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) return done({});
      std::vector<std::string> keys;
      for (std::size_t i = 0; i < r->elements; ++i)
        keys.push_back(alive_key(reply_text(r->element[i])));
      topology_->get(std::move(keys), [this, done](std::optional<std::vector<std::string>> values) {
        std::vector<node_entry> out;
        if (values) {
          for (const auto& text : *values) {
            // Written by nodes, read with the same bound as anything from Redis.
            const json v = parse_json(text, cfg_.limits.json_max_depth);
            if (!v.is_object() || !v.contains("node")) continue;  // expired meanwhile
            node_entry e;
            e.node = string_member(v, "node");
            e.at = static_cast<system_time_ms>(uint_member(v, "at", 0));
            const auto s = v.find("summary");
            e.summary_json = s != v.end() && s->is_object() ? s->dump() : "{}";
            out.push_back(std::move(e));
          }
        }
        done(std::move(out));
      });
    });
    if (!sent) done({});
  });
}

std::vector<std::string> redis_backplane::fcall(const std::string& function,
                                                const std::string& channel) const {
  return {"FCALL", function, names_.cluster ? "1" : "0", channel};
}

void redis_backplane::write_metrics(prometheus_text& out) const {
  out.family("herald_backplane_up", "gauge",
             "1 while the Redis backplane is connected and delivering");
  out.sample("herald_backplane_up", {}, std::uint64_t{up_.load()});
  out.family("herald_backplane_disconnects_total", "counter",
             "Redis connections lost, and connection attempts that failed (one outage counts "
             "once per attempt made during it)");
  out.sample("herald_backplane_disconnects_total", {}, topology_->stats().disconnects.load());
  out.family("herald_backplane_outages_total", "counter",
             "Times the backplane went down (up to down), whatever the number of attempts");
  out.sample("herald_backplane_outages_total", {}, outages_.load());
  out.family("herald_backplane_reconnects_total", "counter", "Redis connections re-established");
  out.sample("herald_backplane_reconnects_total", {}, topology_->stats().reconnects.load());
  out.family("herald_backplane_outage_seconds_total", "counter", "Time the backplane was down");
  out.sample("herald_backplane_outage_seconds_total", {}, outage_seconds());
  out.family("herald_backplane_published_total", "counter", "Publications forwarded to Redis");
  out.sample("herald_backplane_published_total", {}, published_.load());
  out.family("herald_backplane_not_forwarded_total", "counter",
             "Publications delivered on this node only because the backplane was down");
  out.sample("herald_backplane_not_forwarded_total", {}, not_forwarded_.load());
  out.family("herald_backplane_publish_failures_total", "counter", "PUBLISH commands that failed");
  out.sample("herald_backplane_publish_failures_total", {}, failures_.load());
  out.family("herald_backplane_received_total", "counter", "Publications received from Redis");
  out.sample("herald_backplane_received_total", {}, received_.load());
  out.family("herald_backplane_dropped_total", "counter",
             "Publications from Redis not delivered: larger than websocket.max_message_bytes, "
             "or nested deeper than limits.json_max_depth");
  out.sample("herald_backplane_dropped_total", {{"reason", "too_large"}}, dropped_large_.load());
  out.sample("herald_backplane_dropped_total", {{"reason", "too_deep"}}, dropped_deep_.load());
  out.family("herald_backplane_failovers_total", "counter",
             "Failovers announced by Sentinel (+switch-master) for redis.sentinel.master_name");
  out.sample("herald_backplane_failovers_total", {}, topology_->stats().failovers.load());
  out.family("herald_backplane_commands_refused_total", "counter",
             "Redis commands refused because redis.max_pending_commands were unanswered on the "
             "connection (the caller sees a failure: not forwarded, not stored)");
  for (const auto& [name, count] : topology_->refused())
    out.sample("herald_backplane_commands_refused_total", {{"connection", name}}, count);
  if (names_.cluster) {
    out.family("herald_backplane_cluster_refreshes_total", "counter",
               "Times the Redis Cluster's topology was read (at start, after MOVED, after a "
               "primary was lost)");
    out.sample("herald_backplane_cluster_refreshes_total", {}, topology_->stats().refreshes.load());
    out.family("herald_backplane_cluster_redirects_total", "counter",
               "MOVED and ASK answers followed (slots that moved, or are moving)");
    out.sample("herald_backplane_cluster_redirects_total", {}, topology_->stats().redirects.load());
  }
  out.family("herald_backplane_probe_failures_total", "counter",
             "Pub/sub probes that did not come back in time");
  out.sample("herald_backplane_probe_failures_total", {}, probe_failures_.load());
  out.family("herald_backplane_subscriptions", "gauge",
             "Redis channels this node is subscribed to");
  out.sample("herald_backplane_subscriptions", {}, subscribed_count_.load());
  out.family("herald_history_stored_total", "counter",
             "Publications stored in a channel's history (FCALL herald_publish)");
  out.sample("herald_history_stored_total", {}, stored_.load());
  out.family("herald_history_idempotent_duplicates_total", "counter",
             "Publications not stored again because their idempotency key was seen");
  out.sample("herald_history_idempotent_duplicates_total", {}, stored_duplicates_.load());
  out.family("herald_history_store_failures_total", "counter",
             "Publications that could not be stored (the publisher got an error)");
  out.sample("herald_history_store_failures_total", {}, store_failures_.load());
  out.family("herald_history_gap_fills_total", "counter",
             "Times this node read missed publications back from the history");
  out.sample("herald_history_gap_fills_total", {}, history_->stats().gap_fills.load());
  out.family("herald_history_recovered_total", "counter",
             "Publications this node missed on pub/sub and recovered from the history");
  out.sample("herald_history_recovered_total", {}, history_->stats().recovered.load());
  out.family("herald_history_lost_total", "counter",
             "Publications missed on pub/sub and no longer in the history");
  out.sample("herald_history_lost_total", {}, history_->stats().lost.load());
  out.family("herald_history_overflows_total", "counter",
             "Times a history channel held redis.max_held_publications while its gap was read "
             "back, and handed them over without waiting for the read");
  out.sample("herald_history_overflows_total", {}, history_->stats().overflows.load());
  out.family("herald_history_epoch_changes_total", "counter",
             "Times this node found a channel's history replaced by a new epoch (lost or "
             "expired) while following it, and read the new one from its start");
  out.sample("herald_history_epoch_changes_total", {}, history_->stats().epoch_changes.load());
  out.family("herald_history_rewinds_total", "counter",
             "Times this node found a channel's history shorter than what it had delivered (Redis "
             "lost its newest publications, e.g. in a failover): subscribers were told to resync");
  out.sample("herald_history_rewinds_total", {}, history_->stats().rewinds.load());
  out.family("herald_history_resyncs_total", "counter",
             "Epoch changes after this node had been away, and rewinds: the channel's "
             "subscribers here were told to resync (publications may be lost)");
  out.sample("herald_history_resyncs_total", {}, history_->stats().resyncs.load());
  out.family("herald_history_duplicates_total", "counter",
             "History publications received twice (dropped)");
  out.sample("herald_history_duplicates_total", {}, history_->stats().duplicates.load());
  out.family("herald_stream_appends_total", "counter",
             "Messages appended to Redis streams (store-first routes)");
  out.sample("herald_stream_appends_total", {}, stream_appends_.load());
  out.family("herald_stream_append_failures_total", "counter",
             "Store-first messages Redis did not take (the client was told)");
  out.sample("herald_stream_append_failures_total", {}, stream_failures_.load());
}

void redis_backplane::shutdown_connections() {
  probe_timer_.cancel();
  refresh_timer_.cancel();
  alive_timer_.cancel();
  topology_->stop();
  for (auto& [rid, req] : requests_) {
    req.timer->cancel();
    req.done(remote_result::unavailable);
  }
  requests_.clear();
  // Questions still out are answered with what came, the rest named silent.
  std::vector<std::uint64_t> asked;
  for (const auto& q : questions_)
    asked.push_back(q.first);
  for (const auto rid : asked)
    finish_question(rid);
  stopped_ = true;
}

void redis_backplane::commands_up() {
  cmd_up_ = true;
  // The functions and their settings: Redis may have restarted without its data. Commands run
  // in order on a connection: FCALLs sent after this find them.
  load_functions();
  run("", {"SET", prefix_ + "history:settings", settings_}, [](reply_view) {});
  check_eviction_policy();
  for (const auto& [channel, members] : presence_local_) {
    for (const auto& [id, user] : members)
      register_presence(channel, id, user);
  }
  history_->commands_back();  // fills that failed while commands could not be sent
  refresh_alive();
  // Re-register every local connection: the entries may have expired while we were away.
  for (const auto& c : registry_.all())
    register_connection(directory_fields(*c));
  update_status();
}

void redis_backplane::commands_down(const std::string&) {
  if (stopped_) return;
  cmd_up_ = false;
  update_status();
}

void redis_backplane::subscriber_up() {
  sub_up_ = true;
  states_.clear();
  subscribed_count_ = 0;
  for (const auto& [name, wanted] : want_) {
    if (wanted) dirty_.insert(name);
  }
  flush_subscriptions();
  update_status();
}

void redis_backplane::subscriber_down(const std::string&) {
  if (stopped_) return;
  sub_up_ = false;
  states_.clear();
  subscribed_count_ = 0;
  probe_outstanding_ = false;
  probe_confirmed_ = false;
  // What was published while we were away is read back from the history on return.
  history_->interrupted_all();
  // Waiting subscribers are told to go ahead: they are resubscribed when Redis returns.
  for (auto& [name, list] : waiters_) {
    for (auto& [worker, fn] : list)
      post_(worker, std::move(fn));
  }
  waiters_.clear();
  update_status();
}

void redis_backplane::check_eviction_policy() {
  if (cfg_.history.rules.empty() && !cfg_.inbox.enabled) return;
  run("", {"CONFIG", "GET", "maxmemory-policy"}, [this](reply_view r) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) return;
    const std::string policy = reply_text(r->element[1]);
    if (policy == "noeviction") return;
    log_.warn("backplane.eviction_policy",
              {{"maxmemory_policy", policy},
               {"hint",
                "history and inbox keys can be evicted under memory pressure (a silent gap "
                "for clients): run Redis with maxmemory-policy noeviction"}});
  });
}

void redis_backplane::load_functions() {
  topology_->on_every_primary(
      {"FUNCTION", "LOAD", "REPLACE", library_}, [this](std::size_t failed) {
        if (!failed || stopped_) return;
        log_.error("backplane.functions_failed",
                   {{"primaries_failed", failed}, {"hint", "history needs Redis 7 or later"}});
        // Retried while Redis answers errors such as LOADING after a restart.
        auto timer = std::make_shared<asio::steady_timer>(ioc_, std::chrono::milliseconds(500));
        timer->async_wait([this, timer](boost::system::error_code ec) {
          if (!ec && !stopped_ && commands_ready()) load_functions();
        });
      });
}

void redis_backplane::set_down(std::string reason) {
  std::lock_guard lock(status_mutex_);
  status_.up = false;
  status_.reason = std::move(reason);
}

void redis_backplane::update_status() {
  std::string reason;
  if (!cmd_up_) {
    reason = "Redis backplane: command connection down";
  } else if (!sub_up_) {
    reason = "Redis backplane: subscriber connection down";
  } else {
    for (const auto& c : fixed_) {
      if (state_of(c) != sub_state::subscribed) reason = "Redis backplane: subscribing";
    }
    if (reason.empty() && !probe_confirmed_) {
      // Connected and subscribed is not yet delivering: one of our own publications must
      // come back through pub/sub first (after every reconnect of the subscriber).
      reason = "Redis backplane: waiting for the pub/sub probe";
      if (!probe_outstanding_) asio::post(ioc_, [this] { probe(); });
    }
    if (probe_failed_) reason = "Redis backplane: pub/sub probe did not come back";
  }
  const bool up = reason.empty();
  if (up != up_.load()) {
    if (up) {
      const auto since = down_since_ms_.exchange(0);
      const auto outage = since ? now_ms() - since : 0;
      outage_ms_.fetch_add(static_cast<std::uint64_t>(outage));
      log_.info("backplane.up", {{"outage_ms", outage}});
    } else {
      down_since_ms_ = now_ms();
      outages_.fetch_add(1, std::memory_order_relaxed);
      log_.warn("backplane.down", {{"reason", reason}});
    }
    up_ = up;
  }
  if (up) {
    std::lock_guard lock(status_mutex_);
    status_ = {};
  } else {
    set_down(reason);
  }
}

void redis_backplane::refresh_alive() {
  const auto now = now_ms();
  std::string info = json{{"node", node_}, {"connections", registry_.size()}, {"at", now}}.dump();
  if (summary_) {
    // The node's own report is already a JSON object: spliced in, not parsed again.
    info.pop_back();
    info += R"(,"summary":)" + summary_() + "}";
  }
  run(alive_key(node_), {"SET", alive_key(node_), info, "PX", std::to_string(rc_.node_ttl.count())},
      [](reply_view) {});
  run(nodes_key(), {"ZADD", nodes_key(), std::to_string(now), node_}, [](reply_view) {});
  // Nodes that stopped refreshing long ago (crashed) leave the set.
  run(nodes_key(),
      {"ZREMRANGEBYSCORE", nodes_key(), "-inf", std::to_string(now - 10 * rc_.node_ttl.count())},
      [](reply_view) {});
}

void redis_backplane::schedule_alive() {
  alive_timer_.expires_after(rc_.node_ttl / 3);
  alive_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    if (commands_ready()) refresh_alive();
    schedule_alive();
  });
}

void redis_backplane::schedule_probe() {
  probe_timer_.expires_after(rc_.probe_interval);
  probe_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    probe();
    schedule_probe();
  });
}

void redis_backplane::probe() {
  const auto now = steady_clock::now();
  if (probe_outstanding_ && now - probe_sent_ >= rc_.probe_timeout) {
    // Connected but not delivering: the failure that keeps health checks green elsewhere.
    probe_outstanding_ = false;
    probe_failed_ = true;
    probe_failures_.fetch_add(1, std::memory_order_relaxed);
    log_.warn("backplane.probe_failed", {{"timeout_ms", rc_.probe_timeout.count()}});
    update_status();
    // Every subscription is made again, on new connections.
    probe_confirmed_ = false;
    topology_->restart_subscriptions("pub/sub probe did not come back");
    return;
  }
  // Only once our node channel is confirmed: a probe published before that cannot come back,
  // and would fail the subscriber connection that is still subscribing.
  if (probe_outstanding_ || !commands_ready() || !sub_up_ ||
      state_of(node_channel(node_)) != sub_state::subscribed)
    return;
  probe_outstanding_ = true;
  probe_sent_ = now;
  const json op = {{"op", "probe"}, {"nonce", ++probe_nonce_}};
  publish_to(node_channel(node_), op.dump(), [](reply_view) {});
}

std::unique_ptr<backplane> make_redis_backplane(const config& cfg, logger& log,
                                                connection_registry& registry, delivery deliver,
                                                worker_poster post) {
  return std::make_unique<redis_backplane>(cfg, log, registry, std::move(deliver), std::move(post));
}

}  // namespace herald::redis
