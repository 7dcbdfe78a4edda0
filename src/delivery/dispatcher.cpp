#include "herald/delivery/dispatcher.hpp"

#include <bit>
#include <mutex>

#include "herald/common/log.hpp"
#include "herald/protocol/client_frames.hpp"

namespace herald {

namespace {

std::string member_json(const connection& c) {
  return protocol::member_info(c.id().view(), c.info().user_id());
}

}  // namespace

// Where one subscriber of a history channel is: what it was sent last, and while it catches up
// from the history, the live publications held back until the history is sent.
struct dispatcher::cursor {
  std::uint64_t offset = 0;
  std::string epoch;
  bool recovering = true;
  bool overflow = false;
  std::vector<std::shared_ptr<const publication>> held;
};

// What one worker holds: its topic index, history cursors, connections and users.
struct dispatcher::worker_state {
  basic_topic_index<connection> topics;
  // History channels: channel -> subscriber -> cursor.
  std::unordered_map<std::string, std::unordered_map<connection*, cursor>> cursors;
  std::vector<connection*> all;  // every open connection on this worker (at dispatch_slot)
  std::unordered_map<std::string, std::size_t> users;  // user -> connections on this worker
  dispatcher_metrics metrics;
};

dispatcher::dispatcher(const config& cfg, connection_registry& registry, backplane& backplane,
                       unsigned workers, worker_poster post)
    : cfg_(cfg),
      registry_(registry),
      backplane_(backplane),
      post_(std::move(post)),
      channel_workers_(workers) {
  for (unsigned i = 0; i < workers; ++i)
    workers_.push_back(std::make_unique<worker_state>());
}

dispatcher::~dispatcher() = default;

const dispatcher_metrics& dispatcher::metrics(unsigned worker) const {
  return workers_[worker]->metrics;
}

void dispatcher::on_open(connection& conn) {
  auto& w = *workers_[conn.info().worker];
  conn.dispatch_slot = w.all.size();
  w.all.push_back(&conn);
  const std::string user(conn.info().user_id());
  if (!user.empty() && w.users[user]++ == 0) backplane_.user_added(user);
  backplane_.connection_opened(conn);
}

void dispatcher::on_close(connection& conn) {
  auto& w = *workers_[conn.info().worker];
  const std::size_t before = w.topics.subscription_count(&conn);
  if (before != 0) {
    for (const auto& channel : w.topics.channels_of(&conn))
      leave(w, conn, channel);
  }
  w.topics.remove(&conn, [&](const std::string& channel) {
    channel_workers_.remove(channel, conn.info().worker);
    w.metrics.channels.add(-1);
    backplane_.channel_removed(channel);
  });
  w.metrics.subscriptions.add(-static_cast<std::int64_t>(before));
  const std::size_t i = conn.dispatch_slot;
  if (i >= w.all.size() || w.all[i] != &conn) return;  // not opened here
  conn.dispatch_slot = static_cast<std::size_t>(-1);
  if (i + 1 != w.all.size()) {
    w.all[i] = w.all.back();
    w.all[i]->dispatch_slot = i;
  }
  w.all.pop_back();
  const std::string user(conn.info().user_id());
  if (!user.empty()) {
    const auto u = w.users.find(user);
    if (u != w.users.end() && --u->second == 0) {
      w.users.erase(u);
      backplane_.user_removed(user);
    }
  }
  backplane_.connection_closed(conn);
}

void dispatcher::subscribe(connection& conn, std::string_view channel, subscribe_options opts,
                           std::function<void(subscribe_result)> done) {
  const auto status = [&done](subscribe_status s) {
    subscribe_result r;
    r.status = s;
    done(std::move(r));
  };
  if (!is_inbox(channel) && check_channel_name(channel, cfg_.channels.max_name_length))
    return status(subscribe_status::invalid_channel);
  const unsigned worker = conn.info().worker;
  auto& w = *workers_[worker];
  const history_rule* rule = find_history_rule(cfg_, channel);
  if (w.topics.subscribed(channel, &conn)) {
    // Already subscribed: nothing is replayed again; the position is where the subscriber is.
    subscribe_result r;
    if (const cursor* at = rule ? find_cursor(w, std::string(channel), conn) : nullptr) {
      r.history = true;
      r.offset = at->offset;
      r.epoch = at->epoch;
    }
    return done(std::move(r));
  }
  if (w.topics.subscription_count(&conn) >= cfg_.channels.max_per_connection)
    return status(subscribe_status::too_many);
  const auto change = w.topics.subscribe(channel, &conn);
  w.metrics.subscriptions.add(1);
  std::string name(channel);
  if (rule) w.cursors[name].emplace(&conn, cursor{});
  if (const presence_rule* pr = find_presence_rule(cfg_, channel)) {
    backplane_.presence_join(name, conn);
    if (pr->events) {
      auto ev = publication::presence_event(name, "join", member_json(conn));
      ev.exclude = std::string(conn.id().view());
      publish(std::move(ev), [](publish_outcome) {});
    }
  }
  auto go = [this, self = conn.shared_from_this(), name, rule, opts = std::move(opts),
             done = std::move(done)]() mutable {
    if (!rule) return done(subscribe_result{});
    catch_up(self, name, *rule, std::move(opts), std::move(done));
  };
  if (!change.channel_edge) return go();
  // The first subscriber on this worker: the cluster must start sending the channel here.
  channel_workers_.add(name, worker);
  w.metrics.channels.add(1);
  backplane_.channel_added(name, worker, std::move(go));
}

// Reads the history (or only its position), answers the subscribe, sends what the subscriber
// missed, then what arrived live meanwhile, skipping anything it already has.
void dispatcher::catch_up(const std::shared_ptr<connection>& conn, const std::string& channel,
                          const history_rule& rule, subscribe_options opts,
                          std::function<void(subscribe_result)> done) {
  history_query q;
  q.channel = channel;
  q.since = opts.since;
  q.from_ack = opts.from_ack && !opts.since;
  q.limit = recovery_limit();
  const unsigned worker = conn->info().worker;
  backplane_.read_history(
      q, rule, worker,
      [this, conn, channel, q, opts = std::move(opts), done = std::move(done)](history_page page) {
        auto& w = *workers_[conn->info().worker];
        subscribe_result r;
        r.history = true;
        cursor* found = find_cursor(w, channel, *conn);
        if (!found) return done(std::move(r));  // unsubscribed or closed since
        cursor& cur = *found;
        r.resumed = q.since.has_value() || q.from_ack;
        std::vector<message_ptr> replay;
        if (!page.ok) {
          // The history is out of reach: live from now on, and the client is told.
          r.error = page.error.empty() ? "history unavailable" : page.error;
          cur.offset = 0;
          cur.epoch.clear();
        } else {
          r.offset = page.top;
          r.epoch = page.epoch;
          cur.offset = page.top;
          cur.epoch = page.epoch;
          if (r.resumed) {
            r.recovered = history_continuous(page, opts.epoch, recovery_limit());
            if (r.recovered) {
              for (const auto& e : page.entries) {
                replay.push_back(make_message(protocol::message(
                    display_channel(channel), e.data_json, e.id, e.offset, page.epoch)));
              }
            }
          }
        }
        if (r.resumed) (r.recovered ? w.metrics.resumed : w.metrics.not_recovered).add();
        done(std::move(r));
        // The answer first, then the missed publications, then the held live ones.
        for (auto& frame : replay)
          conn->send(std::move(frame));
        w.metrics.replayed.add(replay.size());
        release_held(w, conn, channel, cur);
      });
}

// The subscriber's catch-up is over: what arrived live meanwhile is sent, in order, skipping
// what it already has. One that is further on than the next offset (the history page was read
// before publications this node's subscription had not yet received) is not sent over the
// gap: the gap is read from the history first (refill).
void dispatcher::release_held(worker_state& w, const std::shared_ptr<connection>& conn,
                              const std::string& channel, cursor& cur) {
  cur.recovering = false;
  auto held = std::move(cur.held);
  cur.held.clear();
  const bool overflow = cur.overflow;
  for (std::size_t i = 0; i < held.size(); ++i) {
    const auto& p = held[i];
    if (p->event == "resync") {
      w.metrics.resyncs.add();
    } else if (p->epoch == cur.epoch && p->offset <= cur.offset) {
      w.metrics.duplicates_skipped.add();
      continue;
    } else if (!overflow && follows_gap(cur, *p)) {
      cur.recovering = true;
      cur.held.assign(std::make_move_iterator(held.begin() + static_cast<std::ptrdiff_t>(i)),
                      std::make_move_iterator(held.end()));
      return refill(w, conn, channel, cur);
    }
    cur.offset = p->offset;
    cur.epoch = p->epoch;
    if (p->exclude.empty() || conn->id().view() != p->exclude) conn->send(p->payload, p->binary);
  }
  if (overflow) {
    // More arrived during the catch-up than may be held: the subscriber would miss some.
    // Closing is explicit; the client resumes from its last offset.
    cur.overflow = false;
    w.metrics.recovery_overflows.add();
    conn->close(1013, "subscription could not catch up; resume from the last offset");
  }
}

dispatcher::cursor* dispatcher::find_cursor(worker_state& w, const std::string& channel,
                                            connection& conn) {
  const auto ch = w.cursors.find(channel);
  if (ch == w.cursors.end()) return nullptr;
  const auto k = ch->second.find(&conn);
  return k == ch->second.end() ? nullptr : &k->second;
}

bool dispatcher::follows_gap(const cursor& cur, const publication& p) {
  return !cur.epoch.empty() && p.epoch == cur.epoch && p.offset > cur.offset + 1;
}

// Reads what lies between the subscriber's position and the publications it holds, sends it,
// then the held ones. A history that cannot give it (Redis away, the gap trimmed or replaced)
// closes the connection (1013): the client resumes from its last offset and is told there
// whether everything was recovered, instead of silently missing messages.
void dispatcher::refill(worker_state& w, const std::shared_ptr<connection>& conn,
                        const std::string& channel, cursor& cur) {
  w.metrics.gap_reads.add();
  const history_rule* rule = find_history_rule(cfg_, channel);
  if (rule == nullptr) {  // not reachable: a cursor is kept for history channels only
    cur.recovering = false;
    cur.held.clear();
    return;
  }
  history_query q;
  q.channel = channel;
  q.since = cur.offset;
  q.limit = recovery_limit();
  const std::string epoch = cur.epoch;
  backplane_.read_history(
      q, *rule, conn->info().worker, [this, conn, channel, epoch](history_page page) {
        auto& ws = *workers_[conn->info().worker];
        cursor* found = find_cursor(ws, channel, *conn);
        if (!found) return;  // unsubscribed or closed since
        cursor& at = *found;
        const auto next = std::find_if(at.held.begin(), at.held.end(), [&](const auto& p) {
          return p->event != "resync" && p->epoch == at.epoch && p->offset > at.offset;
        });
        const std::uint64_t needed = next == at.held.end() ? at.offset : (*next)->offset - 1;
        if (!history_continuous(page, epoch, recovery_limit()) || page.top < needed) {
          ws.metrics.gap_closes.add();
          at.held.clear();
          at.overflow = false;
          return conn->close(1013,
                             "subscription missed publications that the history could not "
                             "give back now; resume from the last offset");
        }
        std::size_t n = 0;
        for (const auto& e : page.entries) {
          if (e.offset <= at.offset) continue;
          if (e.offset > needed) break;  // the held ones from here on
          conn->send(make_message(protocol::message(display_channel(channel), e.data_json, e.id,
                                                    e.offset, page.epoch)));
          at.offset = e.offset;
          ++n;
        }
        ws.metrics.replayed.add(n);
        release_held(ws, conn, channel, at);
      });
}

void dispatcher::leave(worker_state& w, connection& conn, const std::string& channel) {
  if (const auto ch = w.cursors.find(channel); ch != w.cursors.end()) {
    ch->second.erase(&conn);
    if (ch->second.empty()) w.cursors.erase(ch);
  }
  if (const presence_rule* pr = find_presence_rule(cfg_, channel)) {
    backplane_.presence_leave(channel, conn);
    if (pr->events) {
      auto ev = publication::presence_event(channel, "leave", member_json(conn));
      ev.exclude = std::string(conn.id().view());
      publish(std::move(ev), [](publish_outcome) {});
    }
  }
}

void dispatcher::unsubscribe(connection& conn, std::string_view channel) {
  auto& w = *workers_[conn.info().worker];
  if (!w.topics.subscribed(channel, &conn)) return;
  leave(w, conn, std::string(channel));
  const auto change = w.topics.unsubscribe(channel, &conn);
  if (!change.changed) return;
  w.metrics.subscriptions.add(-1);
  if (!change.channel_edge) return;
  channel_workers_.remove(channel, conn.info().worker);
  w.metrics.channels.add(-1);
  backplane_.channel_removed(std::string(channel));
}

void dispatcher::channel_counts(
    const std::string& only,
    std::function<void(std::vector<std::pair<std::string, std::size_t>>)> done) const {
  struct gather {
    std::mutex mutex;
    std::unordered_map<std::string, std::size_t> counts;
    std::size_t pending = 0;
    std::function<void(std::vector<std::pair<std::string, std::size_t>>)> done;
  };
  // One channel: only the workers the channel mask names (every worker past 64 of them).
  const bool every = only.empty() || workers_.size() > 64;
  const std::uint64_t mask = every ? 0 : channel_workers_.of(only);
  auto g = std::make_shared<gather>();
  g->pending = every ? workers_.size() : static_cast<std::size_t>(std::popcount(mask));
  g->done = std::move(done);
  if (g->pending == 0) return g->done({});
  for (unsigned i = 0; i < workers_.size(); ++i) {
    if (!every && (mask >> i & 1) == 0) continue;
    post_(i, [this, g, i, only] {
      std::vector<std::pair<std::string, std::size_t>> mine;
      if (only.empty()) {
        workers_[i]->topics.for_each_channel(
            [&mine](const std::string& name, std::size_t n) { mine.emplace_back(name, n); });
      } else if (const auto n = workers_[i]->topics.subscribers(only).size(); n != 0) {
        mine.emplace_back(only, n);
      }
      std::unique_lock lock(g->mutex);
      for (auto& [name, n] : mine)
        g->counts[name] += n;
      if (--g->pending != 0) return;
      std::vector<std::pair<std::string, std::size_t>> out(g->counts.begin(), g->counts.end());
      lock.unlock();
      g->done(std::move(out));
    });
  }
}

std::vector<std::string> dispatcher::channels_of(const connection& conn) const {
  return workers_[conn.info().worker]->topics.channels_of(&conn);
}

std::size_t dispatcher::deliver_local(worker_state& w,
                                      const std::shared_ptr<const publication>& ptr) {
  const publication& p = *ptr;
  w.metrics.publications.add();
  std::size_t n = 0;
  const auto deliver = [&](connection* c) {
    if (!p.exclude.empty() && c->id().view() == p.exclude) return;
    if (c->send(p.payload, p.binary) == send_result::queued) ++n;
  };
  // No copy of the lists: send() on the owning thread only queues (a connection it decides to
  // close is finished later, from its own I/O handler), so the lists cannot change under us.
  const bool resync = p.event == "resync";
  if (p.kind == target_kind::channel && (p.offset != 0 || resync)) {
    // A history publication: each subscriber gets it once, in order, after its catch-up. A
    // resync moves each subscriber's position to where delivery goes on.
    const auto ch = w.cursors.find(p.target);
    for (auto* c : w.topics.subscribers(p.target)) {
      if (ch != w.cursors.end()) {
        if (const auto k = ch->second.find(c); k != ch->second.end()) {
          cursor& cur = k->second;
          if (cur.recovering) {
            if (cur.held.size() < recovery_limit()) {
              cur.held.push_back(ptr);
            } else {
              cur.overflow = true;
            }
            continue;
          }
          if (resync) {
            w.metrics.resyncs.add();
          } else if (p.epoch == cur.epoch && p.offset <= cur.offset) {
            w.metrics.duplicates_skipped.add();
            continue;
          } else if (follows_gap(cur, p)) {
            // Publications between its position and this one never reached it: read them
            // from the history first, hold this one meanwhile.
            cur.recovering = true;
            cur.held.push_back(ptr);
            refill(w, c->shared_from_this(), p.target, cur);
            continue;
          }
          cur.offset = p.offset;
          cur.epoch = p.epoch;
        }
      }
      deliver(c);
    }
  } else if (p.kind == target_kind::channel) {
    for (auto* c : w.topics.subscribers(p.target))
      deliver(c);
  } else {
    for (auto* c : w.all)
      deliver(c);
  }
  w.metrics.deliveries.add(n);
  return n;
}

// One post per worker that has subscribers of the channel (every worker for a broadcast); the
// last one to finish reports the total.
void dispatcher::fan_out(std::shared_ptr<const publication> p,
                         std::function<void(std::size_t)> done) {
  // Broadcasts, and nodes with more workers than the mask has bits, go to every worker.
  const bool every = p->kind != target_kind::channel || workers_.size() > 64;
  const std::uint64_t mask = every ? 0 : channel_workers_.of(p->target);
  const auto targets =
      every ? static_cast<unsigned>(workers_.size()) : static_cast<unsigned>(std::popcount(mask));
  if (targets == 0) {
    if (done) done(0);
    return;
  }
  struct gather {
    std::function<void(std::size_t)> done;
    std::atomic<std::size_t> recipients{0};
    std::atomic<unsigned> pending;
  };
  auto g = std::make_shared<gather>();
  g->done = std::move(done);
  g->pending = targets;
  for (unsigned i = 0; i < workers_.size(); ++i) {
    if (!every && (mask >> i & 1) == 0) continue;
    post_(i, [this, g, p, i] {
      g->recipients.fetch_add(deliver_local(*workers_[i], p), std::memory_order_relaxed);
      if (g->pending.fetch_sub(1, std::memory_order_acq_rel) == 1 && g->done)
        g->done(g->recipients.load());
    });
  }
}

void dispatcher::publish(publication p, std::function<void(publish_outcome)> done) {
  const auto outcome = [](std::size_t n, bool forwarded) {
    publish_outcome o;
    o.recipients = n;
    o.forwarded = forwarded;
    return o;
  };
  switch (p.kind) {
    case target_kind::connection: {
      const auto id = connection_id::parse(p.target);
      if (!id) return done(outcome(0, false));
      if (auto c = registry_.find(*id)) {
        if (c->id().view() == p.exclude) return done(outcome(0, false));
        const bool queued = c->send(std::move(p.payload), p.binary) == send_result::queued;
        return done(outcome(queued ? 1 : 0, false));
      }
      // Not here: perhaps on another node.
      // The id is copied first: the lambda below moves `p`, and argument order is unspecified.
      std::string target = p.target;
      backplane_.locate(target, [this, p = std::move(p), done = std::move(done),
                                 outcome](std::optional<remote_connection> where) {
        if (!where) return done(outcome(0, false));
        backplane_.send_remote(*where, p.payload, p.binary, [done, outcome](remote_result r) {
          done(outcome(r == remote_result::queued ? 1 : 0, true));
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
      return backplane_.forward(
          p, [done = std::move(done), n, outcome](bool forwarded) { done(outcome(n, forwarded)); });
    }
    case target_kind::channel:
      if (p.event.empty()) {
        if (const history_rule* rule = find_history_rule(cfg_, p.target)) {
          // Stored first; everyone, this node included, gets it from the backplane in order.
          backplane_.publish_stored(p, *rule, [done = std::move(done)](stored_result r) {
            publish_outcome o;
            o.stored = true;
            o.forwarded = r.ok && r.forwarded;
            o.store = std::move(r);
            done(std::move(o));
          });
          return;
        }
      }
      [[fallthrough]];
    case target_kind::broadcast: {
      // Answered once both are known: the local recipients, and whether Redis took it.
      struct both {
        std::function<void(publish_outcome)> done;
        std::atomic<int> pending{2};
        std::size_t recipients = 0;
        bool forwarded = false;
        void finish() {
          if (pending.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
          publish_outcome o;
          o.recipients = recipients;
          o.forwarded = forwarded;
          done(std::move(o));
        }
      };
      auto b = std::make_shared<both>();
      b->done = std::move(done);
      backplane_.forward(p, [b](bool forwarded) {
        b->forwarded = forwarded;
        b->finish();
      });
      fan_out(std::make_shared<const publication>(std::move(p)), [b](std::size_t n) {
        b->recipients = n;
        b->finish();
      });
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

}  // namespace herald
