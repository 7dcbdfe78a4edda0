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
      alive_timer_(ioc_),
      watch_timer_(ioc_),
      rng_(std::random_device{}()) {
  options_.endpoint = *endpoint::parse(rc_.url);
  options_.connect_timeout = rc_.connect_timeout;
  options_.command_timeout = rc_.command_timeout;
  options_.max_pending = rc_.max_pending_commands;
  if (options_.endpoint.tls || rc_.tls.enabled) {
    options_.endpoint.tls = true;
    options_.tls = make_client_tls(rc_.tls);
    options_.tls_server_name = rc_.tls.server_name;
    options_.tls_verify = rc_.tls.verify;
    if (!rc_.tls.verify) {
      log_.warn(
          "backplane.tls_unverified",
          {{"redis", options_.endpoint.describe()},
           {"hint", "redis.tls.verify is off: anyone on the path can read and change traffic"}});
    }
  }
  if (const auto& s = rc_.sentinel; !s.addresses.empty()) {
    for (const auto& a : s.addresses) {
      const auto ep = parse_endpoint(a);
      endpoint sentinel;
      sentinel.host = ep.host;
      sentinel.port = ep.port;
      sentinel.username = s.username;
      sentinel.password = s.password;
      sentinel.tls = options_.endpoint.tls;
      options_.sentinels.push_back(std::move(sentinel));
    }
    options_.master_name = s.master_name;
    options_.sentinel_timeout = s.timeout;
  }
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

std::string redis_backplane::describe_redis() const {
  if (names_.cluster) {
    std::string out = std::string(options_.endpoint.tls ? "rediss" : "redis") + "-cluster://";
    for (std::size_t i = 0; i < rc_.cluster.addresses.size(); ++i)
      out += (i ? "," : "") + rc_.cluster.addresses[i];
    return out;
  }
  if (options_.sentinels.empty()) return options_.endpoint.describe();
  std::string out = "sentinel:" + options_.master_name + "@";
  for (std::size_t i = 0; i < options_.sentinels.size(); ++i)
    out += (i ? "," : "") + options_.sentinels[i].host + ":" +
           std::to_string(options_.sentinels[i].port);
  return out;
}

// A subscriber on one Sentinel at a time, for +switch-master: a failover is acted on at once
// (the old primary keeps answering for seconds after it), not when its socket finally drops.
void redis_backplane::watch_sentinels() {
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
    if (!r || r->elements != 3 || reply_text(r->element[0]) != "message") return;
    std::istringstream in(reply_text(r->element[2]));
    std::string name, old_ip, old_port, new_ip, new_port;
    in >> name >> old_ip >> old_port >> new_ip >> new_port;
    if (name != options_.master_name) return;
    failovers_.fetch_add(1, std::memory_order_relaxed);
    log_.warn(
        "backplane.failover",
        {{"master", name}, {"from", old_ip + ":" + old_port}, {"to", new_ip + ":" + new_port}});
    const std::string why = "Sentinel: " + name + " failed over to " + new_ip + ":" + new_port;
    for (const bool subscriber : {false, true}) {
      auto& c = subscriber ? sub_ : cmd_;
      if (!c || !c->ready()) continue;  // already reconnecting: it asks the Sentinels anyway
      c->stop();
      on_lost(subscriber, why);
    }
  };
  watch_ = std::make_shared<redis_connection>(ioc_, std::move(o), std::move(cb));
  watch_->start();
}

redis_backplane::~redis_backplane() {
  asio::post(ioc_, [this] { shutdown_connections(); });
  guard_.reset();
  if (thread_.joinable()) thread_.join();
}

void redis_backplane::start() {
  if (!names_.cluster) {
    cmd_ = make_connection(false);
    sub_ = make_connection(true);
  }
  fixed_ = {names_.broadcast(), names_.control(), node_channel(node_)};
  for (const auto& c : fixed_)
    want_[c] = true;
  thread_ = std::thread([this] {
    log_.info("backplane.starting", {{"redis", describe_redis()}});
    if (names_.cluster) {
      start_cluster();
    } else {
      cmd_->start();
      sub_->start();
    }
    watch_sentinels();
    schedule_probe();
    schedule_refresh();
    schedule_alive();
    ioc_.run();
  });
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
      get_many(std::move(keys), [this, done](std::optional<std::vector<std::string>> values) {
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

bool redis_backplane::commands_ready() const {
  return cluster_ ? cluster_->ready() : cmd_ && cmd_->ready();
}

bool redis_backplane::run(const std::string& key, std::vector<std::string> args,
                          std::function<void(reply_view)> done) {
  if (!cluster_) return cmd_ && cmd_->command(std::move(args), std::move(done));
  // Sent even while one shard is away: the others serve their slots, and a command for the
  // missing one waits for its new primary up to redis.command_timeout, then gets no answer.
  if (stopped_) return false;
  cluster_->command(key, std::move(args), std::move(done));
  return true;
}

bool redis_backplane::publish_to(const std::string& channel, std::string payload,
                                 std::function<void(reply_view)> done) {
  return run(channel, {names_.cluster ? "SPUBLISH" : "PUBLISH", channel, std::move(payload)},
             std::move(done));
}

std::vector<std::string> redis_backplane::fcall(const std::string& function,
                                                const std::string& channel) const {
  return {"FCALL", function, names_.cluster ? "1" : "0", channel};
}

void redis_backplane::get_many(std::vector<std::string> keys,
                               std::function<void(std::optional<std::vector<std::string>>)> done) {
  if (keys.empty()) return done(std::vector<std::string>{});
  if (!cluster_) {
    std::vector<std::string> args{"MGET"};
    args.insert(args.end(), keys.begin(), keys.end());
    const bool sent = run(keys.front(), std::move(args), [done](reply_view r) {
      if (!r || r->type != REDIS_REPLY_ARRAY) return done(std::nullopt);
      std::vector<std::string> out;
      for (std::size_t i = 0; i < r->elements; ++i)
        out.push_back(reply_text(r->element[i]));
      done(std::move(out));
    });
    if (!sent) done(std::nullopt);
    return;
  }
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
      if (r && r->type == REDIS_REPLY_STRING) g->values[i] = reply_text(r);
      if (--g->pending == 0) g->done(std::move(g->values));
    };
    if (!run(keys[i], {"GET", keys[i]}, got)) got(nullptr);
  }
}

void redis_backplane::start_cluster() {
  cluster_client::options o;
  for (const auto& a : rc_.cluster.addresses) {
    const auto ep = parse_endpoint(a);
    endpoint seed = options_.endpoint;
    seed.host = ep.host;
    seed.port = ep.port;
    o.seeds.push_back(std::move(seed));
  }
  o.node = options_;
  o.node.endpoint.db = 0;
  cluster_client::callbacks cb;
  cb.on_ready = [this] { on_ready(false); };
  cb.on_lost = [this](const std::string& why) { on_lost(false, why); };
  cb.on_topology = [this](const cluster_map& map) {
    cluster_refreshes_ = cluster_->refreshes();
    cluster_redirects_ = cluster_->redirects();
    if (shards_) shards_->place(map);
    // A new primary (a failover, a node added) gets the function library too. Replicas have it
    // already (functions are replicated), so this only matters for a primary that was empty.
    std::string primaries;
    for (const cluster_node* p : map.primaries())
      primaries += p->address() + " ";
    if (primaries != primaries_ && cmd_up_) load_functions();
    primaries_ = std::move(primaries);
  };
  cluster_ = std::make_shared<cluster_client>(ioc_, std::move(o), std::move(cb));
  cluster_subscriber::callbacks sc;
  sc.on_message = [this](std::string_view channel, std::string_view payload) {
    on_message(std::string(channel), payload);
  };
  sc.on_subscribed = [this](const std::string& name) { on_shard_subscribed(name); };
  sc.on_interrupted = [this](const std::string& name) { on_shard_interrupted(name); };
  sc.need_topology = [this] {
    if (cluster_) cluster_->refresh();
  };
  redis_connection::options so = options_;
  so.endpoint.db = 0;
  shards_ = std::make_shared<cluster_subscriber>(ioc_, std::move(so), std::move(sc));
  sub_up_ = true;  // each channel is subscribed on its shard: states_ says which receive
  for (const auto& [name, wanted] : want_) {
    if (wanted) dirty_.insert(name);
  }
  flush_subscriptions();
  cluster_->start();
}

void redis_backplane::write_metrics(prometheus_text& out) const {
  out.family("herald_backplane_up", "gauge",
             "1 while the Redis backplane is connected and delivering");
  out.sample("herald_backplane_up", {}, std::uint64_t{up_.load()});
  out.family("herald_backplane_disconnects_total", "counter",
             "Redis connections lost, and connection attempts that failed (one outage counts "
             "once per attempt made during it)");
  out.sample("herald_backplane_disconnects_total", {}, disconnects_.load());
  out.family("herald_backplane_outages_total", "counter",
             "Times the backplane went down (up to down), whatever the number of attempts");
  out.sample("herald_backplane_outages_total", {}, outages_.load());
  out.family("herald_backplane_reconnects_total", "counter", "Redis connections re-established");
  out.sample("herald_backplane_reconnects_total", {}, reconnects_.load());
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
  out.sample("herald_backplane_failovers_total", {}, failovers_.load());
  out.family("herald_backplane_commands_refused_total", "counter",
             "Redis commands refused because redis.max_pending_commands were unanswered on the "
             "connection (the caller sees a failure: not forwarded, not stored)");
  for (const auto& [name, conn] : {std::pair{"command", cmd_}, std::pair{"subscriber", sub_}})
    out.sample("herald_backplane_commands_refused_total", {{"connection", name}},
               conn ? conn->refused() : 0);
  if (names_.cluster) {  // cluster_ itself is the backplane thread's
    out.family("herald_backplane_cluster_refreshes_total", "counter",
               "Times the Redis Cluster's topology was read (at start, after MOVED, after a "
               "primary was lost)");
    out.sample("herald_backplane_cluster_refreshes_total", {}, cluster_refreshes_.load());
    out.family("herald_backplane_cluster_redirects_total", "counter",
               "MOVED and ASK answers followed (slots that moved, or are moving)");
    out.sample("herald_backplane_cluster_redirects_total", {}, cluster_redirects_.load());
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

std::shared_ptr<redis_connection> redis_backplane::make_connection(bool subscriber) {
  redis_connection::callbacks cb;
  cb.on_ready = [this, subscriber] { on_ready(subscriber); };
  cb.on_lost = [this, subscriber](const std::string& why) { on_lost(subscriber, why); };
  if (subscriber) cb.on_push = [this](reply_view r) { on_push(r); };
  return std::make_shared<redis_connection>(ioc_, options_, std::move(cb));
}

void redis_backplane::shutdown_connections() {
  probe_timer_.cancel();
  refresh_timer_.cancel();
  alive_timer_.cancel();
  watch_timer_.cancel();
  if (watch_) watch_->stop();
  for (auto& t : reconnect_timers_)
    t.second->cancel();
  if (cmd_) cmd_->stop();
  if (sub_) sub_->stop();
  if (cluster_) cluster_->stop();
  if (shards_) shards_->stop();
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

void redis_backplane::on_ready(bool subscriber) {
  (subscriber ? attempts_sub_ : attempts_cmd_) = 0;
  log_.info(
      "backplane.connected",
      {{"connection", subscriber ? "subscriber" : "command"},
       {"redis", cluster_ ? describe_redis() : (subscriber ? sub_ : cmd_)->target().describe()}});
  if (subscriber) {
    sub_up_ = true;
    states_.clear();
    subscribed_count_ = 0;
    for (const auto& [name, wanted] : want_) {
      if (wanted) dirty_.insert(name);
    }
    flush_subscriptions();
  } else {
    cmd_up_ = true;
    // The functions and their settings: Redis may have restarted without its data.
    functions_loaded_ = true;  // commands run in order: FCALLs sent after this find them
    load_functions();
    // For libraries loaded by Herald before 0.2 (there were none on a Redis Cluster).
    if (!cluster_) run("", {"SET", prefix_ + "history:settings", settings_}, [](reply_view) {});
    check_eviction_policy();
    for (const auto& [channel, members] : presence_local_) {
      for (const auto& [id, user] : members)
        register_presence(channel, id, user);
    }
    // Fills that failed while the command connection was away.
    history_->commands_back();
    refresh_alive();
    // Re-register every local connection: the entries may have expired while we were away.
    for (const auto& c : registry_.all())
      register_connection(directory_fields(*c));
  }
  update_status();
}

void redis_backplane::on_lost(bool subscriber, const std::string& why) {
  if (stopped_) return;
  disconnects_.fetch_add(1, std::memory_order_relaxed);
  if (subscriber) {
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
  } else {
    cmd_up_ = false;
    // On a Redis Cluster the library stays on every primary (and is replicated); the client
    // reconnects and rereads the topology by itself.
    if (!cluster_) functions_loaded_ = false;
  }
  if (cluster_) {
    log_.warn("backplane.lost", {{"connection", "command"}, {"error", why}});
    return update_status();
  }
  unsigned& attempts = subscriber ? attempts_sub_ : attempts_cmd_;
  // Exponential backoff with full jitter, so nodes do not reconnect in lockstep.
  const auto cap =
      std::min<long long>(rc_.reconnect_max_backoff.count(), 100LL << std::min(attempts, 16u));
  const ms delay(std::uniform_int_distribution<long long>(cap / 2, cap)(rng_));
  ++attempts;
  log_.warn("backplane.lost", {{"connection", subscriber ? "subscriber" : "command"},
                               {"error", why},
                               {"retry_ms", delay.count()}});
  update_status();
  auto& timer = reconnect_timers_[subscriber];
  if (!timer) timer = std::make_shared<asio::steady_timer>(ioc_);
  timer->expires_after(delay);
  timer->async_wait([this, subscriber](boost::system::error_code ec) {
    if (ec || stopped_) return;
    reconnects_.fetch_add(1, std::memory_order_relaxed);
    (subscriber ? sub_ : cmd_)->start();
  });
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
  if (cluster_) {
    cluster_->on_each_primary(
        {"FUNCTION", "LOAD", "REPLACE", library_}, [this](std::size_t, std::size_t failed) {
          if (!failed) return;
          log_.error("backplane.functions_failed",
                     {{"primaries_failed", failed}, {"hint", "history needs Redis 7 or later"}});
        });
    return;
  }
  cmd_->command({"FUNCTION", "LOAD", "REPLACE", library_}, [this](reply_view r) {
    if (!r || r->type != REDIS_REPLY_ERROR) return;
    log_.error("backplane.functions_failed",
               {{"error", reply_text(r)}, {"hint", "history needs Redis 7 or later"}});
    auto timer = std::make_shared<asio::steady_timer>(ioc_, std::chrono::milliseconds(500));
    timer->async_wait([this, timer](boost::system::error_code ec) {
      if (!ec && !stopped_ && cmd_->ready()) load_functions();
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
    if (cluster_) {
      // Every shard's subscriptions are made again, on connections made again.
      probe_confirmed_ = false;
      shards_->restart();
    } else if (sub_up_) {
      sub_->stop();
      on_lost(true, "pub/sub probe did not come back");
    }
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
