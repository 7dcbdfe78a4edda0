#include "redis/redis_backplane.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "herald/common/json_input.hpp"
#include "herald/routing/event.hpp"
#include "herald/ws/handshake.hpp"
#include "herald/ws/utf8.hpp"
#include "redis/redis_connection.hpp"
#include "redis/redis_functions.hpp"

namespace herald::redis {

using nlohmann::json;

namespace {

std::string reply_text(reply_view r) {
  return r && r->str ? std::string(r->str, r->len) : std::string();
}

using ms = std::chrono::milliseconds;

// The backplane on Redis: pub/sub fan-out, the directory, history, presence, streams.
class redis_backplane final : public backplane {
 public:
  redis_backplane(const config& cfg, logger& log, connection_registry& registry, delivery deliver,
                  worker_poster post)
      : cfg_(cfg),
        rc_(cfg.redis),
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
        rng_(std::random_device{}()) {
    options_.endpoint = *endpoint::parse(rc_.url);
    options_.connect_timeout = rc_.connect_timeout;
    options_.command_timeout = rc_.command_timeout;
    set_down("Redis backplane: connecting");
  }

  ~redis_backplane() override {
    asio::post(ioc_, [this] { shutdown_connections(); });
    guard_.reset();
    if (thread_.joinable()) thread_.join();
  }

  void start() override {
    cmd_ = make_connection(false);
    sub_ = make_connection(true);
    fixed_ = {prefix_ + "broadcast", prefix_ + "control", node_channel(node_)};
    for (const auto& c : fixed_)
      want_[c] = true;
    thread_ = std::thread([this] {
      log_.info("backplane.starting", {{"redis", options_.endpoint.describe()}});
      cmd_->start();
      sub_->start();
      schedule_probe();
      schedule_refresh();
      schedule_alive();
      ioc_.run();
    });
  }

  void stop(std::function<void()> done) override {
    asio::post(ioc_, [this, done = std::move(done)] {
      // Leave: this node's liveness key goes; connections removed themselves as they closed.
      if (cmd_ && cmd_->ready() && cmd_->command({"ZREM", nodes_key(), node_}, [](reply_view) {}) &&
          cmd_->command({"DEL", alive_key(node_)}, [this, done](reply_view) {
            shutdown_connections();
            done();
          })) {
        return;
      }
      shutdown_connections();
      done();
    });
  }

  // ---- publications ----

  void forward(const publication& p, std::function<void(bool)> done) override {
    if (!cmd_up_.load(std::memory_order_relaxed)) {
      not_forwarded_.fetch_add(1, std::memory_order_relaxed);
      return done(false);
    }
    std::string channel;
    switch (p.kind) {
      case target_kind::channel:
        channel = prefix_ + "channel:" + p.target;
        break;
      case target_kind::user:
        channel = prefix_ + "user:" + p.target;
        break;
      case target_kind::broadcast:
        channel = prefix_ + "broadcast";
        break;
      case target_kind::connection:
        return done(false);  // sent to the node that holds it instead
    }
    std::string payload = make_envelope({node_, p.id, p.exclude, p.event, p.data_json});
    // Forwarded means Redis answered the PUBLISH: a frozen Redis takes the bytes into its socket
    // buffer and answers nothing, until the command timeout drops the connection.
    asio::post(ioc_, [this, channel = std::move(channel), payload = std::move(payload),
                      done = std::move(done)]() mutable {
      auto shared = std::make_shared<std::function<void(bool)>>(std::move(done));
      const bool sent = cmd_->command({"PUBLISH", channel, payload}, [this, shared](reply_view r) {
        const bool ok = r && r->type == REDIS_REPLY_INTEGER;
        (ok ? published_ : failures_).fetch_add(1, std::memory_order_relaxed);
        (*shared)(ok);
      });
      if (!sent) {
        not_forwarded_.fetch_add(1, std::memory_order_relaxed);
        (*shared)(false);
      }
    });
  }

  // ---- interest ----

  void channel_added(const std::string& channel, unsigned worker,
                     std::function<void()> ready) override {
    asio::post(ioc_, [this, name = prefix_ + "channel:" + channel, worker,
                      ready = std::move(ready)]() mutable {
      if (++refs_[name] == 1) want(name, true);
      if (state_of(name) == sub_state::subscribed || !sub_up_) {
        // Confirmed already, or Redis is away (resubscribed on return): nothing to wait for.
        return post_(worker, std::move(ready));
      }
      waiters_[name].emplace_back(worker, std::move(ready));
    });
  }

  void channel_removed(const std::string& channel) override {
    asio::post(ioc_, [this, name = prefix_ + "channel:" + channel] { release(name); });
  }

  void user_added(const std::string& user) override {
    asio::post(ioc_, [this, name = prefix_ + "user:" + user] {
      if (++refs_[name] == 1) want(name, true);
    });
  }

  void user_removed(const std::string& user) override {
    asio::post(ioc_, [this, name = prefix_ + "user:" + user] { release(name); });
  }

  // ---- directory ----

  void connection_opened(const connection& c) override {
    asio::post(ioc_, [this, fields = directory_fields(c)] {
      if (cmd_->ready()) register_connection(fields);
    });
  }

  void connection_closed(const connection& c) override {
    asio::post(ioc_, [this, key = conn_key(std::string(c.id().view()))] {
      if (cmd_->ready()) cmd_->command({"DEL", key}, [](reply_view) {});
    });
  }

  void locate(const std::string& id,
              std::function<void(std::optional<remote_connection>)> done) override {
    asio::post(ioc_, [this, id, done = std::move(done)] {
      const bool sent = cmd_->command({"HGETALL", conn_key(id)}, [this, id, done](reply_view r) {
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) return done(std::nullopt);
        remote_connection rc;
        rc.connection_id = id;
        for (std::size_t i = 0; i + 1 < r->elements; i += 2) {
          const std::string k = reply_text(r->element[i]);
          const std::string v = reply_text(r->element[i + 1]);
          if (k == "node")
            rc.node = v;
          else if (k == "user")
            rc.user_id = v;
          else if (k == "connectedAt")
            rc.connected_at = std::stoll(v);
          else if (k == "lastActiveAt")
            rc.last_active_at = std::stoll(v);
          else if (k == "sourceIp")
            rc.source_ip = v;
          else if (k == "userAgent")
            rc.user_agent = v;
          else if (k == "subprotocol")
            rc.subprotocol = v;
        }
        if (rc.node.empty()) return done(std::nullopt);
        // A connection whose node is not alive is gone. Alive: its liveness key is there (it
        // expires redis.node_ttl after a crash) and it listens on its node channel, which Redis
        // drops the moment the node's process dies, as a POST finds out (PUBLISH answers 0).
        // Both are pipelined; replies come in order, so the second callback decides.
        auto has_key = std::make_shared<bool>(false);
        const bool asked =
            cmd_->command({"EXISTS", alive_key(rc.node)},
                          [has_key](reply_view a) {
                            *has_key = a && a->type == REDIS_REPLY_INTEGER && a->integer == 1;
                          }) &&
            cmd_->command(
                {"PUBSUB", "NUMSUB", node_channel(rc.node)}, [rc, done, has_key](reply_view n) {
                  const bool listening = n && n->type == REDIS_REPLY_ARRAY && n->elements == 2 &&
                                         n->element[1]->type == REDIS_REPLY_INTEGER &&
                                         n->element[1]->integer >= 1;
                  if (*has_key && listening) return done(rc);
                  done(std::nullopt);
                });
        if (!asked) done(std::nullopt);
      });
      if (!sent) done(std::nullopt);
    });
  }

  void send_remote(const remote_connection& where, std::shared_ptr<const std::string> payload,
                   bool binary, std::function<void(remote_result)> done) override {
    asio::post(ioc_, [this, node = where.node, id = where.connection_id, payload, binary,
                      done = std::move(done)] {
      const std::uint64_t rid = ++next_rid_;
      const json op = {
          {"op", "send"},     {"connection", id},
          {"binary", binary}, {"payload", binary ? ws::base64_encode(*payload) : *payload},
          {"rid", rid},       {"reply", node_}};
      const bool sent = cmd_->command(
          {"PUBLISH", node_channel(node), op.dump(-1, ' ', false, json::error_handler_t::replace)},
          [this, rid](reply_view r) {
            // Nobody listening on that node's channel: it is gone.
            if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0)
              finish_request(rid, remote_result::gone);
          });
      if (!sent) return done(remote_result::unavailable);
      auto timer = std::make_shared<asio::steady_timer>(ioc_, rc_.remote_timeout);
      requests_[rid] = {done, timer};
      timer->async_wait([this, rid](boost::system::error_code ec) {
        if (!ec) finish_request(rid, remote_result::unavailable);
      });
    });
  }

  void close_remote(const remote_connection& where, std::uint16_t code,
                    std::string reason) override {
    asio::post(ioc_, [this, node = where.node, id = where.connection_id, code,
                      reason = std::move(reason)] {
      const json op = {{"op", "close"}, {"connection", id}, {"code", code}, {"reason", reason}};
      cmd_->command({"PUBLISH", node_channel(node), op.dump()}, [](reply_view) {});
    });
  }

  bool close_user(const std::string& user, std::uint16_t code, std::string reason) override {
    asio::post(ioc_, [this, user, code, reason = std::move(reason)] {
      const json op = {{"op", "close_user"},
                       {"user", user},
                       {"code", code},
                       {"reason", reason},
                       {"origin", node_}};
      cmd_->command({"PUBLISH", prefix_ + "control", op.dump()}, [](reply_view) {});
    });
    return status().up;
  }

  // ---- durable delivery ----

  void publish_stored(const publication& p, const history_rule& rule,
                      std::function<void(stored_result)> done) override {
    asio::post(ioc_, [this, channel = p.target, data = p.data_json, id = p.id,
                      key = p.idempotency_key, exclude = p.exclude,
                      size = std::to_string(rule.size), ttl = std::to_string(rule.ttl.count()),
                      done = std::move(done)] {
      const auto fail = [this, &done](std::string why) {
        store_failures_.fetch_add(1, std::memory_order_relaxed);
        stored_result r;
        r.error = std::move(why);
        done(std::move(r));
      };
      if (!functions_loaded_) return fail("Redis unavailable");
      const bool sent = cmd_->command(
          {"FCALL", fn_.publish, "0", channel, data, id, key, exclude, node_, size, ttl},
          [this, done](reply_view r) {
            stored_result out;
            if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
              store_failures_.fetch_add(1, std::memory_order_relaxed);
              out.error = r && r->type == REDIS_REPLY_ERROR ? reply_text(r) : "Redis unavailable";
              return done(std::move(out));
            }
            if (r->element[0]->integer <= 0) {
              // Published but not stored: a library that does not take size and ttl (an older
              // Herald loaded it) and found no settings. Never reported as stored.
              store_failures_.fetch_add(1, std::memory_order_relaxed);
              out.error =
                  "not stored: the Redis function library does not keep this channel's "
                  "history (a node with another configuration loaded it)";
              log_.error("history.not_stored", {{"error", out.error}});
              return done(std::move(out));
            }
            out.ok = true;
            out.forwarded = true;  // stored in Redis and published to every node
            out.offset = static_cast<std::uint64_t>(r->element[0]->integer);
            out.epoch = reply_text(r->element[1]);
            out.duplicate = r->element[2]->integer == 1;
            (out.duplicate ? stored_duplicates_ : stored_).fetch_add(1, std::memory_order_relaxed);
            done(std::move(out));
          });
      if (!sent) fail("Redis unavailable");
    });
  }

  void read_history(history_query q, const history_rule&, unsigned worker,
                    std::function<void(history_page)> done) override {
    asio::post(ioc_, [this, q = std::move(q), worker, done = std::move(done)]() mutable {
      read_page(q, [this, worker, channel = q.channel,
                    done = std::move(done)](history_page page) mutable {
        seed(channel, page);
        // Posted after every live publication this thread handed over before: the cursor in
        // the worker skips what the page already holds.
        post_(worker, [page = std::move(page), done = std::move(done)]() mutable {
          done(std::move(page));
        });
      });
    });
  }

  void ack(const std::string& channel, std::uint64_t offset,
           std::function<void(std::optional<std::uint64_t>)> done) override {
    asio::post(ioc_, [this, channel, offset, done = std::move(done)] {
      const bool sent = functions_loaded_ &&
                        cmd_->command({"FCALL", fn_.ack, "0", channel, std::to_string(offset)},
                                      [done](reply_view r) {
                                        if (!r || r->type != REDIS_REPLY_INTEGER)
                                          return done(std::nullopt);
                                        done(static_cast<std::uint64_t>(r->integer));
                                      });
      if (!sent) done(std::nullopt);
    });
  }

  // ---- presence ----

  void presence_join(const std::string& channel, const connection& c) override {
    asio::post(ioc_, [this, channel, id = std::string(c.id().view()), user = c.info().user_id] {
      auto& members = presence_local_[channel];
      members[id] = user;
      if (cmd_->ready()) register_presence(channel, id, user);
    });
  }

  void presence_leave(const std::string& channel, const connection& c) override {
    asio::post(ioc_, [this, channel, id = std::string(c.id().view())] {
      const auto it = presence_local_.find(channel);
      if (it != presence_local_.end()) {
        it->second.erase(id);
        if (it->second.empty()) presence_local_.erase(it);
      }
      if (cmd_->ready()) cmd_->command({"HDEL", presence_key(channel), id}, [](reply_view) {});
    });
  }

  void presence(const std::string& channel, std::size_t limit,
                std::function<void(presence_result)> done) override {
    asio::post(ioc_, [this, channel, limit, done = std::move(done)] {
      const bool sent = cmd_->command({"HGETALL", presence_key(channel)}, [this, channel, limit,
                                                                           done](reply_view r) {
        if (!r || r->type != REDIS_REPLY_ARRAY) {
          presence_result out;
          out.error = "Redis unavailable";
          return done(std::move(out));
        }
        // Entries of nodes that stopped refreshing their liveness key are dead: left out, and
        // removed.
        auto members = std::make_shared<std::vector<presence_member>>();
        std::vector<std::string> nodes;
        for (std::size_t i = 0; i + 1 < r->elements; i += 2) {
          const json v = parse_json(reply_text(r->element[i + 1]), cfg_.limits.json_max_depth);
          if (!v.is_object()) continue;
          presence_member m{reply_text(r->element[i]), v.value("user", ""), v.value("node", "")};
          if (std::find(nodes.begin(), nodes.end(), m.node) == nodes.end()) nodes.push_back(m.node);
          members->push_back(std::move(m));
        }
        auto alive = std::make_shared<std::unordered_set<std::string>>();
        auto pending = std::make_shared<std::size_t>(nodes.size());
        const auto finish = [this, channel, limit, members, alive, done] {
          presence_result out;
          out.ok = true;
          for (auto& m : *members) {
            if (!alive->count(m.node)) {
              cmd_->command({"HDEL", presence_key(channel), m.connection_id}, [](reply_view) {});
              continue;
            }
            if (out.members.size() == limit) {
              out.truncated = true;
              continue;
            }
            out.members.push_back(std::move(m));
          }
          done(std::move(out));
        };
        if (nodes.empty()) return finish();
        for (const auto& node : nodes) {
          const bool asked = cmd_->command(
              {"EXISTS", alive_key(node)}, [node, alive, pending, finish](reply_view e) {
                if (e && e->type == REDIS_REPLY_INTEGER && e->integer == 1) alive->insert(node);
                if (--*pending == 0) finish();
              });
          if (!asked && --*pending == 0) finish();
        }
      });
      if (!sent) {
        presence_result out;
        out.error = "Redis unavailable";
        done(std::move(out));
      }
    });
  }

  // ---- store-first ----

  void append_stream(std::string key, std::vector<std::pair<std::string, std::string>> fields,
                     std::size_t max_length, std::function<void(bool, std::string)> done) override {
    asio::post(ioc_, [this, key = std::move(key), fields = std::move(fields), max_length,
                      done = std::move(done)] {
      std::vector<std::string> args{"XADD", key, "MAXLEN", "~", std::to_string(max_length), "*"};
      for (const auto& [k, v] : fields) {
        args.push_back(k);
        args.push_back(v);
      }
      const bool sent = cmd_->command(args, [this, done](reply_view r) {
        if (!r || r->type != REDIS_REPLY_STRING) {
          stream_failures_.fetch_add(1, std::memory_order_relaxed);
          return done(false,
                      r && r->type == REDIS_REPLY_ERROR ? reply_text(r) : "Redis unavailable");
        }
        stream_appends_.fetch_add(1, std::memory_order_relaxed);
        done(true, reply_text(r));
      });
      if (!sent) {
        stream_failures_.fetch_add(1, std::memory_order_relaxed);
        done(false, "Redis unavailable");
      }
    });
  }

  // ---- health and metrics ----

  backplane_status status() const override {
    backplane_status s;
    {
      std::lock_guard lock(status_mutex_);
      s = status_;
    }
    s.kind = "redis";
    s.outage_seconds = outage_seconds();
    return s;
  }

  // ---- the cluster ----

  void set_node_summary(std::function<std::string()> summary) override {
    summary_ = std::move(summary);
  }

  void nodes(std::function<void(std::vector<node_entry>)> done) override {
    asio::post(ioc_, [this, done = std::move(done)] {
      const std::string since = std::to_string(now_ms() - rc_.node_ttl.count());
      const bool sent =
          cmd_->command({"ZRANGEBYSCORE", nodes_key(), since, "+inf", "LIMIT", "0", "1000"},
                        [this, done](reply_view r) {
                          if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0)
                            return done({});
                          std::vector<std::string> args{"MGET"};
                          for (std::size_t i = 0; i < r->elements; ++i)
                            args.push_back(alive_key(reply_text(r->element[i])));
                          const bool asked = cmd_->command(args, [this, done](reply_view values) {
                            std::vector<node_entry> out;
                            if (values && values->type == REDIS_REPLY_ARRAY) {
                              for (std::size_t i = 0; i < values->elements; ++i) {
                                // Written by nodes, read with the same bound as anything from
                                // Redis.
                                const json v = parse_json(reply_text(values->element[i]),
                                                          cfg_.limits.json_max_depth);
                                if (!v.is_object() || !v.contains("node"))
                                  continue;  // expired meanwhile
                                node_entry e;
                                e.node = v.value("node", "");
                                e.at = v.value("at", system_time_ms{0});
                                const auto s = v.find("summary");
                                e.summary_json = s != v.end() && s->is_object() ? s->dump() : "{}";
                                out.push_back(std::move(e));
                              }
                            }
                            done(std::move(out));
                          });
                          if (!asked) done({});
                        });
      if (!sent) done({});
    });
  }

  void write_metrics(prometheus_text& out) const override {
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
    out.family("herald_backplane_publish_failures_total", "counter",
               "PUBLISH commands that failed");
    out.sample("herald_backplane_publish_failures_total", {}, failures_.load());
    out.family("herald_backplane_received_total", "counter", "Publications received from Redis");
    out.sample("herald_backplane_received_total", {}, received_.load());
    out.family("herald_backplane_dropped_total", "counter",
               "Publications from Redis not delivered: larger than websocket.max_message_bytes, "
               "or nested deeper than limits.json_max_depth");
    out.sample("herald_backplane_dropped_total", {{"reason", "too_large"}}, dropped_large_.load());
    out.sample("herald_backplane_dropped_total", {{"reason", "too_deep"}}, dropped_deep_.load());
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
    out.sample("herald_history_gap_fills_total", {}, gap_fills_.load());
    out.family("herald_history_recovered_total", "counter",
               "Publications this node missed on pub/sub and recovered from the history");
    out.sample("herald_history_recovered_total", {}, recovered_.load());
    out.family("herald_history_lost_total", "counter",
               "Publications missed on pub/sub and no longer in the history");
    out.sample("herald_history_lost_total", {}, lost_.load());
    out.family("herald_history_epoch_changes_total", "counter",
               "Times this node found a channel's history replaced by a new epoch (lost or "
               "expired) while following it, and read the new one from its start");
    out.sample("herald_history_epoch_changes_total", {}, epoch_changes_.load());
    out.family("herald_history_resyncs_total", "counter",
               "Epoch changes after this node had been away: the channel's subscribers here were "
               "told to resync (old publications may be lost)");
    out.sample("herald_history_resyncs_total", {}, resyncs_.load());
    out.family("herald_history_duplicates_total", "counter",
               "History publications received twice (dropped)");
    out.sample("herald_history_duplicates_total", {}, dup_received_.load());
    out.family("herald_stream_appends_total", "counter",
               "Messages appended to Redis streams (store-first routes)");
    out.sample("herald_stream_appends_total", {}, stream_appends_.load());
    out.family("herald_stream_append_failures_total", "counter",
               "Store-first messages Redis did not take (the client was told)");
    out.sample("herald_stream_append_failures_total", {}, stream_failures_.load());
  }

 private:
  enum class sub_state { none, subscribing, subscribed, unsubscribing };
  // Where this node is in a history channel.
  struct stream_state {
    std::string epoch;
    std::uint64_t last = 0;   // the newest offset of `epoch` handed to the workers (0: none yet)
    bool positioned = false;  // epoch and last say where this node is; else take what comes
    bool filling = false;
    bool needs_fill = false;  // the subscriber connection was lost: read what was missed
    // The subscription was lost since the position was last confirmed: if the channel's
    // history turns out to have been replaced meanwhile (a new epoch), publications of the old
    // one may have been missed and cannot be read back any more.
    bool interrupted = false;
    std::map<std::uint64_t, publication> held;  // arrived during a fill, by offset
  };
  static constexpr std::size_t kMaxHeld = 10000;
  struct pending_request {
    std::function<void(remote_result)> done;
    std::shared_ptr<asio::steady_timer> timer;
  };

  // Time down in all: the finished outages, and the current one if the backplane is down now.
  double outage_seconds() const {
    double seconds = static_cast<double>(outage_ms_.load()) / 1000.0;
    if (const auto since = down_since_ms_.load(); since != 0)
      seconds += static_cast<double>(now_ms() - since) / 1000.0;
    return seconds;
  }

  std::string node_channel(const std::string& node) const { return prefix_ + "node:" + node; }
  std::string alive_key(const std::string& node) const {
    return prefix_ + "node:" + node + ":alive";
  }
  std::string nodes_key() const { return prefix_ + "nodes"; }
  std::string conn_key(const std::string& id) const { return prefix_ + "conn:" + id; }
  std::string presence_key(const std::string& channel) const {
    return prefix_ + "presence:" + channel;
  }

  void register_presence(const std::string& channel, const std::string& id,
                         const std::string& user) {
    const json v = {{"user", user}, {"node", node_}};
    cmd_->command({"HSET", presence_key(channel), id, v.dump()}, [](reply_view) {});
    cmd_->command({"PEXPIRE", presence_key(channel), std::to_string(rc_.directory_ttl.count())},
                  [](reply_view) {});
  }

  // FCALL history; `done` on this thread. A failed read is a page with ok = false.
  void read_page(const history_query& q, std::function<void(history_page)> done) {
    const std::string since = q.from_ack ? "ack"
                              : q.since  ? std::to_string(*q.since)
                                         : std::string();
    const auto fail = [&done](std::string why) {
      history_page page;
      page.error = std::move(why);
      done(std::move(page));
    };
    if (!functions_loaded_) return fail("Redis unavailable");
    const history_rule* rule = find_history_rule(cfg_, q.channel);
    const bool sent = cmd_->command(
        {"FCALL", fn_.history, "0", q.channel, since, std::to_string(q.limit),
         rule ? std::to_string(rule->ttl.count()) : std::string()},
        [done](reply_view r) {
          history_page page;
          if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 4) {
            page.error = r && r->type == REDIS_REPLY_ERROR ? reply_text(r) : "Redis unavailable";
            return done(std::move(page));
          }
          page.ok = true;
          page.epoch = reply_text(r->element[0]);
          page.top = static_cast<std::uint64_t>(r->element[1]->integer);
          page.acked = static_cast<std::uint64_t>(r->element[2]->integer);
          page.from = static_cast<std::uint64_t>(r->element[3]->integer);
          for (std::size_t i = 4; i + 3 < r->elements; i += 4) {
            page.entries.push_back({static_cast<std::uint64_t>(r->element[i]->integer),
                                    r->element[i + 1]->integer, reply_text(r->element[i + 2]),
                                    reply_text(r->element[i + 3])});
          }
          done(std::move(page));
        });
    if (!sent) fail("Redis unavailable");
  }

  std::shared_ptr<redis_connection> make_connection(bool subscriber) {
    redis_connection::callbacks cb;
    cb.on_ready = [this, subscriber] { on_ready(subscriber); };
    cb.on_lost = [this, subscriber](const std::string& why) { on_lost(subscriber, why); };
    if (subscriber) cb.on_push = [this](reply_view r) { on_push(r); };
    return std::make_shared<redis_connection>(ioc_, options_, std::move(cb));
  }

  void shutdown_connections() {
    probe_timer_.cancel();
    refresh_timer_.cancel();
    alive_timer_.cancel();
    for (auto& t : reconnect_timers_)
      t.second->cancel();
    if (cmd_) cmd_->stop();
    if (sub_) sub_->stop();
    for (auto& [rid, req] : requests_) {
      req.timer->cancel();
      req.done(remote_result::unavailable);
    }
    requests_.clear();
    stopped_ = true;
  }

  // ---- connection life ----

  void on_ready(bool subscriber) {
    (subscriber ? attempts_sub_ : attempts_cmd_) = 0;
    log_.info("backplane.connected", {{"connection", subscriber ? "subscriber" : "command"},
                                      {"redis", options_.endpoint.describe()}});
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
      cmd_->command({"SET", prefix_ + "history:settings", settings_}, [](reply_view) {});
      check_eviction_policy();
      for (const auto& [channel, members] : presence_local_) {
        for (const auto& [id, user] : members)
          register_presence(channel, id, user);
      }
      // Fills that failed while the command connection was away.
      for (auto& [channel, s] : streams_) {
        if (s.needs_fill && !s.filling &&
            state_of(prefix_ + "channel:" + channel) == sub_state::subscribed)
          start_fill(channel);
      }
      refresh_alive();
      // Re-register every local connection: the entries may have expired while we were away.
      for (const auto& c : registry_.all())
        register_connection(directory_fields(*c));
    }
    update_status();
  }

  void on_lost(bool subscriber, const std::string& why) {
    if (stopped_) return;
    disconnects_.fetch_add(1, std::memory_order_relaxed);
    if (subscriber) {
      sub_up_ = false;
      states_.clear();
      subscribed_count_ = 0;
      probe_outstanding_ = false;
      probe_confirmed_ = false;
      // What was published while we were away is read back from the history on return.
      for (auto& [channel, s] : streams_) {
        s.needs_fill = true;
        s.interrupted = s.interrupted || s.positioned;
      }
      // Waiting subscribers are told to go ahead: they are resubscribed when Redis returns.
      for (auto& [name, list] : waiters_) {
        for (auto& [worker, fn] : list)
          post_(worker, std::move(fn));
      }
      waiters_.clear();
    } else {
      cmd_up_ = false;
      functions_loaded_ = false;
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

  // History keys carry TTLs, so every eviction policy but noeviction may delete them under
  // memory pressure (volatile-* ones first of all): said once per connect, as a warning. Managed
  // Redis services that refuse CONFIG are not second-guessed.
  void check_eviction_policy() {
    if (cfg_.history.rules.empty() && !cfg_.inbox.enabled) return;
    cmd_->command({"CONFIG", "GET", "maxmemory-policy"}, [this](reply_view r) {
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

  // FUNCTION LOAD, retried while Redis answers errors such as LOADING after a restart.
  void load_functions() {
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

  void set_down(std::string reason) {
    std::lock_guard lock(status_mutex_);
    status_.up = false;
    status_.reason = std::move(reason);
  }

  void update_status() {
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

  // ---- subscriptions ----

  sub_state state_of(const std::string& name) const {
    const auto it = states_.find(name);
    return it == states_.end() ? sub_state::none : it->second;
  }

  void release(const std::string& name) {
    const auto it = refs_.find(name);
    if (it == refs_.end() || --it->second > 0) return;
    refs_.erase(it);
    want(name, false);
    if (name.starts_with(prefix_ + "channel:")) streams_.erase(name.substr(prefix_.size() + 8));
    // Whoever waited for this channel has left it.
    if (auto w = waiters_.find(name); w != waiters_.end()) {
      for (auto& [worker, fn] : w->second)
        post_(worker, std::move(fn));
      waiters_.erase(w);
    }
  }

  void want(const std::string& name, bool wanted) {
    if (wanted) {
      want_[name] = true;
    } else {
      want_.erase(name);
    }
    dirty_.insert(name);
    if (!flush_posted_) {
      flush_posted_ = true;
      asio::post(ioc_, [this] { flush_subscriptions(); });  // batched: one command per turn
    }
  }

  void flush_subscriptions() {
    flush_posted_ = false;
    if (!sub_up_) return;
    std::vector<std::string> add, drop;
    for (const auto& name : dirty_) {
      const bool wanted = want_.count(name) != 0;
      const sub_state s = state_of(name);
      if (wanted && (s == sub_state::none || s == sub_state::unsubscribing)) {
        add.push_back(name);
        states_[name] = sub_state::subscribing;
      } else if (!wanted && (s == sub_state::subscribing || s == sub_state::subscribed)) {
        drop.push_back(name);
        states_[name] = sub_state::unsubscribing;
      }
    }
    dirty_.clear();
    constexpr std::size_t batch = 512;
    for (std::size_t i = 0; i < add.size(); i += batch) {
      sub_->subscribe({add.begin() + static_cast<long>(i),
                       add.begin() + static_cast<long>(std::min(add.size(), i + batch))});
    }
    for (std::size_t i = 0; i < drop.size(); i += batch) {
      sub_->unsubscribe({drop.begin() + static_cast<long>(i),
                         drop.begin() + static_cast<long>(std::min(drop.size(), i + batch))});
    }
  }

  void on_push(reply_view r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
    const std::string kind = reply_text(r->element[0]);
    const std::string name = reply_text(r->element[1]);
    if (kind == "message")
      return on_message(name, std::string_view(r->element[2]->str, r->element[2]->len));
    if (kind == "subscribe") {
      if (state_of(name) == sub_state::subscribing) {
        states_[name] = sub_state::subscribed;
        subscribed_count_.fetch_add(1, std::memory_order_relaxed);
        if (name.starts_with(prefix_ + "channel:")) {
          const auto s = streams_.find(name.substr(prefix_.size() + 8));
          if (s != streams_.end() && s->second.needs_fill) start_fill(s->first);
        }
      }
      if (auto w = waiters_.find(name); w != waiters_.end()) {
        for (auto& [worker, fn] : w->second)
          post_(worker, std::move(fn));
        waiters_.erase(w);
      }
      update_status();
    } else if (kind == "unsubscribe") {
      if (state_of(name) == sub_state::subscribed)
        subscribed_count_.fetch_sub(1, std::memory_order_relaxed);
      if (state_of(name) == sub_state::unsubscribing) states_.erase(name);
      if (want_.count(name)) {
        // Wanted again while we were leaving it.
        states_.erase(name);
        dirty_.insert(name);
        flush_subscriptions();
      }
    }
  }

  void on_message(const std::string& channel, std::string_view payload) {
    if (channel == node_channel(node_)) return on_node_op(payload);
    if (channel == prefix_ + "control") return on_control(payload);
    publication p;
    if (channel.starts_with(prefix_ + "channel:")) {
      p.kind = target_kind::channel;
      p.target = channel.substr(prefix_.size() + 8);
    } else if (channel.starts_with(prefix_ + "user:")) {
      p.kind = target_kind::user;
      p.target = channel.substr(prefix_.size() + 5);
    } else if (channel == prefix_ + "broadcast") {
      p.kind = target_kind::broadcast;
    } else {
      return;
    }
    // What no client may receive is dropped here, counted: data larger than a client may send
    // (backends can PUBLISH anything), or nested deeper than limits.json_max_depth. A payload
    // far over the limit is not even parsed; the envelope's own fields are small.
    const std::size_t limit = cfg_.websocket.max_message_bytes;
    if (payload.size() > limit + 64 * 1024) return drop(channel, "too_large", payload);
    incoming in = parse_payload(payload, cfg_.limits.json_max_depth);
    if (!in.refused.empty()) return drop(channel, in.refused, payload);
    if (in.data_json.size() > limit) return drop(channel, "too_large", payload);
    if (in.offset != 0 && p.kind == target_kind::channel) {
      // A history publication (ours too: stored ones are delivered from here, in order).
      received_.fetch_add(1, std::memory_order_relaxed);
      auto built = publication::stored(std::move(p.target), std::move(in.data_json),
                                       std::move(in.id), in.offset, std::move(in.epoch));
      built.exclude = std::move(in.exclude);
      return on_stored(std::move(built));
    }
    if (in.origin == node_) return;  // ours: delivered here when it was published
    received_.fetch_add(1, std::memory_order_relaxed);
    if (!in.event.empty() && p.kind == target_kind::channel) {
      auto ev = publication::presence_event(std::move(p.target), std::move(in.event),
                                            std::move(in.data_json));
      ev.exclude = std::move(in.exclude);
      return deliver_(std::move(ev));
    }
    auto built = publication::message(p.kind, std::move(p.target), std::move(in.data_json),
                                      std::move(in.id));
    built.exclude = std::move(in.exclude);
    deliver_(std::move(built));
  }

  // A publication from Redis that is not delivered. Logged at most once a second (a backend
  // looping on a bad payload must not flood the log); the counters say how many.
  void drop(const std::string& channel, const std::string& reason, std::string_view payload) {
    (reason == "too_large" ? dropped_large_ : dropped_deep_)
        .fetch_add(1, std::memory_order_relaxed);
    const auto now = steady_clock::now();
    if (now - last_drop_log_ < std::chrono::seconds(1)) return;
    last_drop_log_ = now;
    log_.warn("backplane.dropped",
              {{"channel", channel},
               {"reason", reason},
               {"bytes", payload.size()},
               {"limit", reason == "too_large" ? cfg_.websocket.max_message_bytes
                                               : cfg_.limits.json_max_depth}});
  }

  // ---- history order and gap fill ----
  //
  // Per channel, this node hands history publications to its workers in offset order, once
  // each. A gap (a publication missed while Redis or the subscriber connection was away, or
  // reordered) is filled from the history before anything after it is handed over.

  void on_stored(publication p) {
    auto& s = streams_[p.target];
    if (s.filling || s.needs_fill) {
      if (s.held.size() < kMaxHeld) {
        s.held.emplace(p.offset, std::move(p));
        return;
      }
      // Holding more would be unbounded: hand over what we have and count the gap.
      finish_fill(s);
    }
    accept(s, std::move(p));
  }

  // Hands `p` over unless it is old; a jump forward, or an epoch we did not expect, starts a fill.
  void accept(stream_state& s, publication p) {
    if (!s.positioned) {
      // The first one this node sees of the channel: where it stands from now on.
      s.positioned = true;
      s.epoch = p.epoch;
      s.last = p.offset;
      return deliver_(std::move(p));
    }
    if (p.epoch != s.epoch) {
      if (!s.interrupted && p.offset == 1) {
        // A new life of the history (it expired, or was deleted), seen from its very first
        // publication while subscribed throughout: nothing can have been missed.
        s.epoch = p.epoch;
        s.last = 1;
        return deliver_(std::move(p));
      }
      // Anything else is read from the history: the fill sees the new epoch and decides.
      const std::string channel = p.target;
      s.held.emplace(p.offset, std::move(p));
      return start_fill(channel);
    }
    if (p.offset <= s.last) {
      dup_received_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (p.offset == s.last + 1) {
      s.last = p.offset;
      return deliver_(std::move(p));
    }
    const std::string channel = p.target;
    s.held.emplace(p.offset, std::move(p));
    start_fill(channel);
  }

  // A read tells where the history is. If this node has handed nothing of the channel over yet,
  // that is where it stands: whatever is published after the read and before the subscription
  // to the channel is confirmed (Redis was away, or the subscription is in flight) is then read
  // back on confirmation instead of being missed.
  void seed(const std::string& channel, const history_page& page) {
    if (!page.ok || page.epoch.empty()) return;
    const std::string name = prefix_ + "channel:" + channel;
    if (!refs_.count(name)) return;
    auto& s = streams_[channel];
    if (s.positioned) return;
    s.positioned = true;
    s.epoch = page.epoch;
    s.last = page.top;
    if (state_of(name) != sub_state::subscribed) s.needs_fill = true;
  }

  void retry_fill_later(const std::string& channel) {
    auto timer = std::make_shared<asio::steady_timer>(ioc_, std::chrono::milliseconds(200));
    timer->async_wait([this, timer, channel](boost::system::error_code ec) {
      if (ec || stopped_) return;
      const auto it = streams_.find(channel);
      if (it == streams_.end() || !it->second.needs_fill || it->second.filling) return;
      if (state_of(prefix_ + "channel:" + channel) == sub_state::subscribed) start_fill(channel);
    });
  }

  void start_fill(const std::string& channel) {
    auto& s = streams_[channel];
    if (s.filling) {
      s.needs_fill = true;  // once this one is done, read on
      return;
    }
    if (!s.positioned) {  // nothing delivered yet: nothing can have been missed
      s.needs_fill = false;
      s.interrupted = false;
      return finish_fill(s);
    }
    s.filling = true;
    s.needs_fill = false;
    gap_fills_.fetch_add(1, std::memory_order_relaxed);
    history_query q;
    q.channel = channel;
    q.since = s.last;
    q.limit = kMaxHeld;
    read_page(q, [this, channel](history_page page) {
      const auto it = streams_.find(channel);
      if (it == streams_.end()) return;  // nobody here wants the channel any more
      auto& st = it->second;
      st.filling = false;
      if (!page.ok) {
        // Redis is away again, or still loading its data: retried shortly (and when the
        // command connection is back).
        st.needs_fill = true;
        log_.warn("backplane.gap_fill_failed", {{"channel", channel}, {"error", page.error}});
        retry_fill_later(channel);
        return;
      }
      if (page.epoch != st.epoch) return epoch_changed(channel, st, page);
      std::size_t n = 0;
      for (auto& e : page.entries) {
        if (e.offset <= st.last) continue;
        if (e.offset != st.last + 1) lost_.fetch_add(e.offset - st.last - 1);
        st.last = e.offset;
        ++n;
        deliver_(publication::stored(channel, std::move(e.data_json), std::move(e.id), e.offset,
                                     st.epoch));
      }
      // The history is the one we followed, and we have all of it up to here.
      st.interrupted = false;
      recovered_.fetch_add(n, std::memory_order_relaxed);
      if (n) log_.info("backplane.gap_filled", {{"channel", channel}, {"recovered", n}});
      finish_fill(st);
      // The subscriber connection was lost again during this fill: read on from here.
      if (st.needs_fill && state_of(prefix_ + "channel:" + channel) == sub_state::subscribed)
        start_fill(channel);
    });
  }

  // The fill found another history than the one this node followed (Redis lost its data, or
  // the channel's history expired or was deleted, and publishing went on in a new epoch). The
  // new epoch is read from its start, so connected clients miss none of it. If this node was
  // away meanwhile, publications of the old epoch may have been lost with it, and no one can
  // tell which: its subscribers are told to resync first. Both are counted.
  void epoch_changed(const std::string& channel, stream_state& st, const history_page& page) {
    epoch_changes_.fetch_add(1, std::memory_order_relaxed);
    const bool may_have_lost = st.interrupted;
    log_.warn("backplane.history_replaced", {{"channel", channel},
                                             {"epoch", st.epoch},
                                             {"last", st.last},
                                             {"new_epoch", page.epoch},
                                             {"newest", page.top},
                                             {"resync", may_have_lost}});
    if (may_have_lost) {
      resyncs_.fetch_add(1, std::memory_order_relaxed);
      deliver_(publication::resync(
          channel, page.epoch, 0,
          "the channel's history was lost while this node could not follow it; messages "
          "published before it may be missing"));
    }
    st.interrupted = false;
    st.epoch = page.epoch;
    st.last = 0;
    // Held publications of the old epoch are older than anything of the new one.
    for (auto it = st.held.begin(); it != st.held.end();) {
      if (it->second.epoch != page.epoch) {
        it = st.held.erase(it);
      } else {
        ++it;
      }
    }
    if (page.epoch.empty()) {
      // No history at all now: the next publication starts the new epoch; take it as it comes.
      st.positioned = false;
      return finish_fill(st);
    }
    st.positioned = true;
    start_fill(channel);  // from offset 0 of the new epoch
  }

  // Hands over what was held, in order, counting what could not be recovered.
  void finish_fill(stream_state& s) {
    auto held = std::move(s.held);
    s.held.clear();
    for (auto& [offset, p] : held) {
      if (p.epoch == s.epoch && s.positioned && offset > s.last + 1)
        lost_.fetch_add(offset - s.last - 1, std::memory_order_relaxed);
      if (p.epoch == s.epoch && s.positioned && offset <= s.last) {
        dup_received_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      s.positioned = true;
      s.epoch = p.epoch;
      s.last = offset;
      deliver_(std::move(p));
    }
  }

  // Requests addressed to this node.
  void on_node_op(std::string_view payload) {
    const json op = parse_json(payload, cfg_.limits.json_max_depth);
    if (!op.is_object()) return;
    const std::string kind = op.value("op", "");
    if (kind == "probe") {
      if (op.value("nonce", std::uint64_t{0}) == probe_nonce_ && probe_outstanding_) {
        probe_outstanding_ = false;
        if (probe_failed_ || !probe_confirmed_) {
          probe_failed_ = false;
          probe_confirmed_ = true;
          update_status();
        }
      }
      return;
    }
    if (kind == "result") {
      const std::string result = op.value("result", "");
      finish_request(op.value("rid", std::uint64_t{0}), result == "queued" ? remote_result::queued
                                                        : result == "dropped"
                                                            ? remote_result::dropped
                                                            : remote_result::gone);
      return;
    }
    const auto id = connection_id::parse(op.value("connection", ""));
    const auto conn = id ? registry_.find(*id) : nullptr;
    if (kind == "close") {
      if (conn) conn->close(op.value("code", std::uint16_t{1000}), op.value("reason", ""));
      return;
    }
    if (kind != "send") return;
    const std::uint64_t rid = op.value("rid", std::uint64_t{0});
    const std::string reply_to = op.value("reply", "");
    const auto answer = [this, rid, reply_to](std::string_view result) {
      const json res = {{"op", "result"}, {"rid", rid}, {"result", result}};
      cmd_->command({"PUBLISH", node_channel(reply_to), res.dump()}, [](reply_view) {});
    };
    if (!conn) return answer("gone");
    const bool binary = op.value("binary", false);
    std::string text = op.value("payload", "");
    if (binary) text = ws::base64_decode(text).value_or(std::string());
    auto payload_ptr = std::make_shared<const std::string>(std::move(text));
    // The send happens on the connection's worker, where the queue's answer is exact.
    post_(conn->info().worker, [this, conn, payload_ptr, binary, answer] {
      const send_result r = conn->send(payload_ptr, binary);
      asio::post(ioc_, [r, answer] {
        answer(r == send_result::queued    ? "queued"
               : r == send_result::dropped ? "dropped"
                                           : "gone");
      });
    });
  }

  void on_control(std::string_view payload) {
    const json op = parse_json(payload, cfg_.limits.json_max_depth);
    if (!op.is_object() || op.value("origin", "") == node_) return;
    if (op.value("op", "") == "close_user") {
      for (const auto& c : registry_.find_user(op.value("user", ""))) {
        c->close(op.value("code", std::uint16_t{1000}), op.value("reason", ""));
      }
    }
  }

  void finish_request(std::uint64_t rid, remote_result r) {
    const auto it = requests_.find(rid);
    if (it == requests_.end()) return;
    auto done = std::move(it->second.done);
    it->second.timer->cancel();
    requests_.erase(it);
    done(r);
  }

  // ---- directory ----

  static std::vector<std::string> directory_fields(const connection& c) {
    const auto& i = c.info();
    return {std::string(i.id.view()),
            "user",
            i.user_id,
            "connectedAt",
            std::to_string(i.connected_at),
            "lastActiveAt",
            std::to_string(c.last_active_at()),
            "sourceIp",
            i.source_ip,
            "userAgent",
            i.user_agent,
            "subprotocol",
            i.subprotocol};
  }

  void register_connection(const std::vector<std::string>& fields) {
    std::vector<std::string> args{"HSET", conn_key(fields[0]), "node", node_};
    args.insert(args.end(), fields.begin() + 1, fields.end());
    cmd_->command(args, [](reply_view) {});
    cmd_->command({"PEXPIRE", conn_key(fields[0]), std::to_string(rc_.directory_ttl.count())},
                  [](reply_view) {});
  }

  // Every third of the TTL: refresh this node's entries (and their lastActiveAt).
  void schedule_refresh() {
    refresh_timer_.expires_after(rc_.directory_ttl / 3);
    refresh_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || stopped_) return;
      if (cmd_->ready()) {
        for (const auto& c : registry_.all()) {
          const std::string key = conn_key(std::string(c->id().view()));
          cmd_->command({"HSET", key, "lastActiveAt", std::to_string(c->last_active_at())},
                        [](reply_view) {});
          cmd_->command({"PEXPIRE", key, std::to_string(rc_.directory_ttl.count())},
                        [](reply_view) {});
        }
        for (const auto& [channel, members] : presence_local_) {
          cmd_->command(
              {"PEXPIRE", presence_key(channel), std::to_string(rc_.directory_ttl.count())},
              [](reply_view) {});
        }
      }
      schedule_refresh();
    });
  }

  // The liveness key, with this node's report for the console and the CLI, and its place in
  // <prefix>:nodes (a sorted set by refresh time: the live nodes without a SCAN).
  void refresh_alive() {
    const auto now = now_ms();
    std::string info = json{{"node", node_}, {"connections", registry_.size()}, {"at", now}}.dump();
    if (summary_) {
      // The node's own report is already a JSON object: spliced in, not parsed again.
      info.pop_back();
      info += R"(,"summary":)" + summary_() + "}";
    }
    cmd_->command({"SET", alive_key(node_), info, "PX", std::to_string(rc_.node_ttl.count())},
                  [](reply_view) {});
    cmd_->command({"ZADD", nodes_key(), std::to_string(now), node_}, [](reply_view) {});
    // Nodes that stopped refreshing long ago (crashed) leave the set.
    cmd_->command(
        {"ZREMRANGEBYSCORE", nodes_key(), "-inf", std::to_string(now - 10 * rc_.node_ttl.count())},
        [](reply_view) {});
  }

  void schedule_alive() {
    alive_timer_.expires_after(rc_.node_ttl / 3);
    alive_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || stopped_) return;
      if (cmd_->ready()) refresh_alive();
      schedule_alive();
    });
  }

  // ---- liveness probe ----

  void schedule_probe() {
    probe_timer_.expires_after(rc_.probe_interval);
    probe_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || stopped_) return;
      probe();
      schedule_probe();
    });
  }

  void probe() {
    const auto now = steady_clock::now();
    if (probe_outstanding_ && now - probe_sent_ >= rc_.probe_timeout) {
      // Connected but not delivering: the failure that keeps health checks green elsewhere.
      probe_outstanding_ = false;
      probe_failed_ = true;
      probe_failures_.fetch_add(1, std::memory_order_relaxed);
      log_.warn("backplane.probe_failed", {{"timeout_ms", rc_.probe_timeout.count()}});
      update_status();
      if (sub_up_) {
        sub_->stop();
        on_lost(true, "pub/sub probe did not come back");
      }
      return;
    }
    // Only once our node channel is confirmed: a probe published before that cannot come back,
    // and would fail the subscriber connection that is still subscribing.
    if (probe_outstanding_ || !cmd_->ready() || !sub_up_ ||
        state_of(node_channel(node_)) != sub_state::subscribed)
      return;
    probe_outstanding_ = true;
    probe_sent_ = now;
    const json op = {{"op", "probe"}, {"nonce", ++probe_nonce_}};
    cmd_->command({"PUBLISH", node_channel(node_), op.dump()}, [](reply_view) {});
  }

  const config& cfg_;
  const redis_config& rc_;
  logger& log_;
  connection_registry& registry_;
  delivery deliver_;
  worker_poster post_;
  const std::string node_;
  const std::string prefix_;
  const function_names fn_;
  const std::string library_;
  const std::string settings_;
  std::function<std::string()> summary_;  // set before start(); called on this thread
  redis_connection::options options_;

  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
  std::shared_ptr<redis_connection> cmd_;
  std::shared_ptr<redis_connection> sub_;
  asio::steady_timer probe_timer_;
  asio::steady_timer refresh_timer_;
  asio::steady_timer alive_timer_;
  std::unordered_map<bool, std::shared_ptr<asio::steady_timer>> reconnect_timers_;
  std::mt19937_64 rng_;

  // Backplane thread only.
  std::vector<std::string> fixed_;              // always subscribed
  std::unordered_map<std::string, int> refs_;   // workers interested in a Redis channel
  std::unordered_map<std::string, bool> want_;  // Redis channels we should be in
  std::unordered_map<std::string, sub_state> states_;
  std::unordered_set<std::string> dirty_;
  std::unordered_map<std::string, std::vector<std::pair<unsigned, std::function<void()>>>> waiters_;
  std::unordered_map<std::uint64_t, pending_request> requests_;
  std::unordered_map<std::string, stream_state> streams_;  // history channels, by name
  std::unordered_map<std::string, std::unordered_map<std::string, std::string>>
      presence_local_;  // channel -> connection id -> user, for re-registration
  bool functions_loaded_ = false;
  std::uint64_t next_rid_ = 0;
  std::uint64_t probe_nonce_ = 0;
  steady_clock::time_point probe_sent_;
  steady_clock::time_point last_drop_log_;
  unsigned attempts_cmd_ = 0;
  unsigned attempts_sub_ = 0;
  bool sub_up_ = false;
  bool flush_posted_ = false;
  bool probe_outstanding_ = false;
  bool probe_failed_ = false;
  bool probe_confirmed_ = false;  // a probe came back since the subscriber (re)connected
  bool stopped_ = false;

  // Read by other threads.
  std::atomic<bool> cmd_up_{false};
  std::atomic<bool> up_{false};
  std::atomic<system_time_ms> down_since_ms_{now_ms()};
  std::atomic<std::uint64_t> outage_ms_{0};
  std::atomic<std::uint64_t> disconnects_{0}, reconnects_{0}, published_{0}, not_forwarded_{0},
      failures_{0}, received_{0}, probe_failures_{0}, stored_{0}, stored_duplicates_{0},
      store_failures_{0}, gap_fills_{0}, recovered_{0}, lost_{0}, dup_received_{0},
      stream_appends_{0}, stream_failures_{0}, dropped_large_{0}, dropped_deep_{0},
      epoch_changes_{0}, resyncs_{0}, outages_{0};
  std::atomic<std::int64_t> subscribed_count_{0};
  mutable std::mutex status_mutex_;
  backplane_status status_;
};

}  // namespace

std::unique_ptr<backplane> make_redis_backplane(const config& cfg, logger& log,
                                                connection_registry& registry, delivery deliver,
                                                worker_poster post) {
  return std::make_unique<redis_backplane>(cfg, log, registry, std::move(deliver), std::move(post));
}

}  // namespace herald::redis
