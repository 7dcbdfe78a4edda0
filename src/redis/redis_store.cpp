// What the Redis backplane keeps in Redis: history (stored, read; its order and gap fill are
// history_sequencer's), inbox acks, presence, streams.
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
          if (refs_.count(names_.channel(channel))) history_->seed(channel, page);
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
    const bool sent = run(channel, std::move(args), [done](reply_view r) {
      if (!r || r->type != REDIS_REPLY_INTEGER) return done(std::nullopt);
      done(static_cast<std::uint64_t>(r->integer));
    });
    if (!sent) done(std::nullopt);
  });
}

void redis_backplane::presence_join(const std::string& channel, const connection& c) {
  asio::post(ioc_, [this, channel, id = std::string(c.id().view()),
                    user = std::string(c.info().user_id())] {
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

}  // namespace herald::redis
