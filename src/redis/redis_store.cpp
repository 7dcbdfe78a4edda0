// What the Redis backplane keeps in Redis: history and its gap fill, inbox acks, presence, streams.
#include "redis/redis_backplane_impl.hpp"

namespace herald::redis {

void redis_backplane::publish_stored(const publication& p, const history_rule& rule,
                                     std::function<void(stored_result)> done) {
  asio::post(ioc_, [this, channel = p.target, data = p.data_json, id = p.id,
                    key = p.idempotency_key, exclude = p.exclude, size = std::to_string(rule.size),
                    ttl = std::to_string(rule.ttl.count()), done = std::move(done)] {
    const auto fail = [this, &done](std::string why) {
      store_failures_.fetch_add(1, std::memory_order_relaxed);
      stored_result r;
      r.error = std::move(why);
      done(std::move(r));
    };
    if (!functions_loaded_) return fail("Redis unavailable");
    auto args = fcall(fn_.publish, channel);
    args.insert(args.end(), {data, id, key, exclude, node_, size, ttl});
    const bool sent = run(channel, std::move(args), [this, done](reply_view r) {
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

void redis_backplane::read_history(history_query q, const history_rule&, unsigned worker,
                                   std::function<void(history_page)> done) {
  asio::post(ioc_, [this, q = std::move(q), worker, done = std::move(done)]() mutable {
    read_page(
        q, [this, worker, channel = q.channel, done = std::move(done)](history_page page) mutable {
          seed(channel, page);
          // Posted after every live publication this thread handed over before: the cursor in
          // the worker skips what the page already holds.
          post_(worker, [page = std::move(page), done = std::move(done)]() mutable {
            done(std::move(page));
          });
        });
  });
}

void redis_backplane::ack(const std::string& channel, std::uint64_t offset,
                          std::function<void(std::optional<std::uint64_t>)> done) {
  asio::post(ioc_, [this, channel, offset, done = std::move(done)] {
    auto args = fcall(fn_.ack, channel);
    args.push_back(std::to_string(offset));
    const bool sent = functions_loaded_ && run(channel, std::move(args), [done](reply_view r) {
                        if (!r || r->type != REDIS_REPLY_INTEGER) return done(std::nullopt);
                        done(static_cast<std::uint64_t>(r->integer));
                      });
    if (!sent) done(std::nullopt);
  });
}

void redis_backplane::presence_join(const std::string& channel, const connection& c) {
  asio::post(ioc_, [this, channel, id = std::string(c.id().view()), user = c.info().user_id] {
    auto& members = presence_local_[channel];
    members[id] = user;
    if (commands_ready()) register_presence(channel, id, user);
  });
}

void redis_backplane::presence_leave(const std::string& channel, const connection& c) {
  asio::post(ioc_, [this, channel, id = std::string(c.id().view())] {
    const auto it = presence_local_.find(channel);
    if (it != presence_local_.end()) {
      it->second.erase(id);
      if (it->second.empty()) presence_local_.erase(it);
    }
    if (commands_ready())
      run(presence_key(channel), {"HDEL", presence_key(channel), id}, [](reply_view) {});
  });
}

void redis_backplane::presence(const std::string& channel, std::size_t limit,
                               std::function<void(presence_result)> done) {
  asio::post(ioc_, [this, channel, limit, done = std::move(done)] {
    const bool sent = run(
        presence_key(channel), {"HGETALL", presence_key(channel)},
        [this, channel, limit, done](reply_view r) {
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
            presence_member m{reply_text(r->element[i]), string_member(v, "user"),
                              string_member(v, "node")};
            if (std::find(nodes.begin(), nodes.end(), m.node) == nodes.end())
              nodes.push_back(m.node);
            members->push_back(std::move(m));
          }
          auto alive = std::make_shared<std::unordered_set<std::string>>();
          auto pending = std::make_shared<std::size_t>(nodes.size());
          const auto finish = [this, channel, limit, members, alive, done] {
            presence_result out;
            out.ok = true;
            for (auto& m : *members) {
              if (!alive->count(m.node)) {
                run(presence_key(channel), {"HDEL", presence_key(channel), m.connection_id},
                    [](reply_view) {});
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
            const bool asked = run(alive_key(node), {"EXISTS", alive_key(node)},
                                   [node, alive, pending, finish](reply_view e) {
                                     if (e && e->type == REDIS_REPLY_INTEGER && e->integer == 1)
                                       alive->insert(node);
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

void redis_backplane::append_stream(std::string key,
                                    std::vector<std::pair<std::string, std::string>> fields,
                                    std::size_t max_length,
                                    std::function<void(bool, std::string)> done) {
  asio::post(ioc_, [this, key = std::move(key), fields = std::move(fields), max_length,
                    done = std::move(done)] {
    std::vector<std::string> args{"XADD", key, "MAXLEN", "~", std::to_string(max_length), "*"};
    for (const auto& [k, v] : fields) {
      args.push_back(k);
      args.push_back(v);
    }
    const bool sent = run(key, std::move(args), [this, done](reply_view r) {
      if (!r || r->type != REDIS_REPLY_STRING) {
        stream_failures_.fetch_add(1, std::memory_order_relaxed);
        return done(false, r && r->type == REDIS_REPLY_ERROR ? reply_text(r) : "Redis unavailable");
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

void redis_backplane::register_presence(const std::string& channel, const std::string& id,
                                        const std::string& user) {
  const json v = {{"user", user}, {"node", node_}};
  const std::string key = presence_key(channel);
  run(key, {"HSET", key, id, v.dump()}, [](reply_view) {});
  run(key, {"PEXPIRE", key, std::to_string(rc_.directory_ttl.count())}, [](reply_view) {});
}

void redis_backplane::read_page(const history_query& q, std::function<void(history_page)> done) {
  const std::string since = q.from_ack ? "ack" : q.since ? std::to_string(*q.since) : std::string();
  const auto fail = [&done](std::string why) {
    history_page page;
    page.error = std::move(why);
    done(std::move(page));
  };
  if (!functions_loaded_) return fail("Redis unavailable");
  const history_rule* rule = find_history_rule(cfg_, q.channel);
  auto args = fcall(fn_.history, q.channel);
  args.insert(args.end(), {since, std::to_string(q.limit),
                           rule ? std::to_string(rule->ttl.count()) : std::string()});
  const bool sent = run(q.channel, std::move(args), [done](reply_view r) {
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

void redis_backplane::on_stored(publication p) {
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

void redis_backplane::accept(stream_state& s, publication p) {
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

void redis_backplane::seed(const std::string& channel, const history_page& page) {
  if (!page.ok || page.epoch.empty()) return;
  const std::string name = names_.channel(channel);
  if (!refs_.count(name)) return;
  auto& s = streams_[channel];
  if (s.positioned) return;
  s.positioned = true;
  s.epoch = page.epoch;
  s.last = page.top;
  if (state_of(name) != sub_state::subscribed) s.needs_fill = true;
}

void redis_backplane::retry_fill_later(const std::string& channel) {
  auto timer = std::make_shared<asio::steady_timer>(ioc_, std::chrono::milliseconds(200));
  timer->async_wait([this, timer, channel](boost::system::error_code ec) {
    if (ec || stopped_) return;
    const auto it = streams_.find(channel);
    if (it == streams_.end() || !it->second.needs_fill || it->second.filling) return;
    if (state_of(names_.channel(channel)) == sub_state::subscribed) start_fill(channel);
  });
}

void redis_backplane::start_fill(const std::string& channel) {
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
    if (page.top < st.last) return history_rewound(channel, st, page);
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
    if (st.needs_fill && state_of(names_.channel(channel)) == sub_state::subscribed)
      start_fill(channel);
  });
}

void redis_backplane::epoch_changed(const std::string& channel, stream_state& st,
                                    const history_page& page) {
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

// The same history, shorter than what this node already delivered: Redis lost its newest
// publications (a failover to a replica that had not received them, a restore from an older
// copy). Offsets after the new top will be given again to other publications, so subscribers
// are moved back to the top with a resync (not a silent gap), and the history is read on
// from there: what was published since, on the new primary, included.
void redis_backplane::history_rewound(const std::string& channel, stream_state& st,
                                      const history_page& page) {
  rewinds_.fetch_add(1, std::memory_order_relaxed);
  resyncs_.fetch_add(1, std::memory_order_relaxed);
  log_.warn("backplane.history_rewound",
            {{"channel", channel}, {"epoch", st.epoch}, {"last", st.last}, {"newest", page.top}});
  deliver_(publication::resync(
      channel, st.epoch, page.top,
      "the channel's history lost the publications after offset " + std::to_string(page.top) +
          " (Redis failed over to a copy that had not received them); those delivered after "
          "it may be followed by others with the same offsets"));
  st.last = page.top;
  st.interrupted = false;
  start_fill(channel);
}

void redis_backplane::finish_fill(stream_state& s) {
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

}  // namespace herald::redis
