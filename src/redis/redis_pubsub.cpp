// The Redis backplane's pub/sub: forwarding, interest, subscriptions, what arrives.
#include "redis/redis_backplane_impl.hpp"

namespace herald::redis {

void redis_backplane::forward(const publication& p, std::function<void(bool)> done) {
  std::string channel;
  switch (p.kind) {
    case target_kind::channel:
      channel = names_.channel(p.target);
      break;
    case target_kind::user:
      channel = names_.user(p.target);
      break;
    case target_kind::broadcast:
      channel = names_.broadcast();
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
    const bool sent = publish_to(channel, std::move(payload), [this, shared](reply_view r) {
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

void redis_backplane::channel_added(const std::string& channel, unsigned worker,
                                    std::function<void()> ready) {
  asio::post(ioc_,
             [this, name = names_.channel(channel), worker, ready = std::move(ready)]() mutable {
               if (++refs_[name] == 1) want(name, true);
               if (state_of(name) == sub_state::subscribed || !sub_up_) {
                 // Confirmed already, or Redis is away (resubscribed on return): nothing to wait
                 // for.
                 return post_(worker, std::move(ready));
               }
               waiters_[name].emplace_back(worker, std::move(ready));
               // A subscription Redis does not confirm (a shard failing over holds it until its
               // slot has a primary again) answers the subscriber after redis.command_timeout at
               // most; it receives once confirmed.
               auto timer = std::make_shared<asio::steady_timer>(ioc_, rc_.command_timeout);
               timer->async_wait([this, timer, name](boost::system::error_code ec) {
                 if (!ec && !stopped_) release_waiters(name);
               });
             });
}

void redis_backplane::channel_removed(const std::string& channel) {
  asio::post(ioc_, [this, name = names_.channel(channel)] { release(name); });
}

void redis_backplane::user_added(const std::string& user) {
  asio::post(ioc_, [this, name = names_.user(user)] {
    if (++refs_[name] == 1) want(name, true);
  });
}

void redis_backplane::user_removed(const std::string& user) {
  asio::post(ioc_, [this, name = names_.user(user)] { release(name); });
}

void redis_backplane::release(const std::string& name) {
  const auto it = refs_.find(name);
  if (it == refs_.end() || --it->second > 0) return;
  refs_.erase(it);
  want(name, false);
  if (const auto channel = names_.channel_of(name)) history_->forget(*channel);
  release_waiters(name);  // whoever waited for this channel has left it
}

void redis_backplane::release_waiters(const std::string& name) {
  if (auto w = waiters_.find(name); w != waiters_.end()) {
    for (auto& [worker, fn] : w->second)
      post_(worker, std::move(fn));
    waiters_.erase(w);
  }
}

void redis_backplane::want(const std::string& name, bool wanted) {
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

void redis_backplane::flush_subscriptions() {
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
      if (s == sub_state::subscribed) subscribed_count_.fetch_sub(1, std::memory_order_relaxed);
      states_[name] = sub_state::unsubscribing;
    }
  }
  dirty_.clear();
  if (!add.empty()) topology_->subscribe(add);
  if (!drop.empty()) topology_->unsubscribe(drop);
}

void redis_backplane::unsubscription_confirmed(const std::string& name) {
  if (state_of(name) == sub_state::unsubscribing) states_.erase(name);
  if (want_.count(name) && state_of(name) != sub_state::subscribing) {
    // Wanted again while we were leaving it.
    states_.erase(name);
    dirty_.insert(name);
    flush_subscriptions();
  }
}

void redis_backplane::subscription_confirmed(const std::string& name) {
  if (state_of(name) == sub_state::subscribing) {
    states_[name] = sub_state::subscribed;
    subscribed_count_.fetch_add(1, std::memory_order_relaxed);
    if (const auto channel = names_.channel_of(name)) history_->confirmed(*channel);
  }
  release_waiters(name);
  update_status();
}

// The subscription was dropped on its own (on a cluster: its slot moved, its primary failed, its
// connection was lost): nothing arrives on it until the topology subscribes it again, where
// the slot is now. A history channel reads back what was published meanwhile once it is.
void redis_backplane::subscription_interrupted(const std::string& name) {
  if (state_of(name) == sub_state::subscribed) {
    subscribed_count_.fetch_sub(1, std::memory_order_relaxed);
    states_[name] = sub_state::subscribing;
  }
  if (const auto channel = names_.channel_of(name)) history_->interrupted(*channel);
  if (name == node_channel(node_)) probe_outstanding_ = false;
  update_status();
}

void redis_backplane::on_message(const std::string& channel, std::string_view payload) {
  if (channel == node_channel(node_)) return on_node_op(payload);
  if (channel == names_.control()) return on_control(payload);
  publication p;
  if (auto name = names_.channel_of(channel)) {
    p.kind = target_kind::channel;
    p.target = std::move(*name);
  } else if (auto user = names_.user_of(channel)) {
    p.kind = target_kind::user;
    p.target = std::move(*user);
  } else if (channel == names_.broadcast()) {
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
    auto built = publication::stored(std::move(p.target), std::move(in.data_json), std::move(in.id),
                                     in.offset, std::move(in.epoch));
    built.exclude = std::move(in.exclude);
    return history_->on_stored(std::move(built));
  }
  if (in.origin == node_) return;  // ours: delivered here when it was published
  received_.fetch_add(1, std::memory_order_relaxed);
  if (!in.event.empty() && p.kind == target_kind::channel) {
    auto ev = publication::presence_event(std::move(p.target), std::move(in.event),
                                          std::move(in.data_json));
    ev.exclude = std::move(in.exclude);
    return deliver_(std::move(ev));
  }
  auto built =
      publication::message(p.kind, std::move(p.target), std::move(in.data_json), std::move(in.id));
  built.exclude = std::move(in.exclude);
  deliver_(std::move(built));
}

void redis_backplane::drop(const std::string& channel, const std::string& reason,
                           std::string_view payload) {
  (reason == "too_large" ? dropped_large_ : dropped_deep_).fetch_add(1, std::memory_order_relaxed);
  const auto now = steady_clock::now();
  if (now - last_drop_log_ < std::chrono::seconds(1)) return;
  last_drop_log_ = now;
  log_.warn("backplane.dropped", {{"channel", channel},
                                  {"reason", reason},
                                  {"bytes", payload.size()},
                                  {"limit", reason == "too_large" ? cfg_.websocket.max_message_bytes
                                                                  : cfg_.limits.json_max_depth}});
}

void redis_backplane::on_control(std::string_view payload) {
  const node_op op = parse_node_op(payload, cfg_.limits.json_max_depth);
  if (op.origin == node_) return;
  if (op.op == "ask") {
    if (!question_ || op.reply.empty()) return;
    const json answer = {
        {"op", "answer"}, {"rid", op.rid}, {"node", node_}, {"answer", question_(op.kind, op.arg)}};
    publish_to(node_channel(op.reply), answer.dump(-1, ' ', false, json::error_handler_t::replace),
               [](reply_view) {});
    return;
  }
  // Nodes of earlier versions close a user's connections everywhere with this, unanswered.
  if (op.op == "close_user") {
    for (const auto& c : registry_.find_user(op.user))
      c->close(op.code, op.reason);
  }
}

}  // namespace herald::redis
