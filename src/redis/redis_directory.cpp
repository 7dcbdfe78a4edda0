// The Redis backplane's connection directory and node-to-node requests.
#include "redis/redis_backplane_impl.hpp"

namespace herald::redis {

void redis_backplane::connection_opened(const connection& c) {
  asio::post(ioc_, [this, fields = directory_fields(c)] {
    if (commands_ready()) register_connection(fields);
  });
}

void redis_backplane::connection_closed(const connection& c) {
  asio::post(ioc_, [this, key = conn_key(std::string(c.id().view()))] {
    if (commands_ready()) run(key, {"DEL", key}, [](reply_view) {});
  });
}

void redis_backplane::locate(const std::string& id,
                             std::function<void(std::optional<remote_connection>)> done) {
  asio::post(ioc_, [this, id, done = std::move(done)] {
    const bool sent = run(conn_key(id), {"HGETALL", conn_key(id)}, [this, id, done](reply_view r) {
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
      // Both are asked at once (on a Redis Cluster, of the shard of the node's channel, which
      // holds its liveness key too); the second answer decides.
      struct verdict {
        int answers = 0;
        bool has_key = false, listening = false;
      };
      auto v = std::make_shared<verdict>();
      const auto decide = [v, rc, done] {
        if (++v->answers < 2) return;
        if (v->has_key && v->listening) return done(rc);
        done(std::nullopt);
      };
      const std::string channel = node_channel(rc.node);
      if (!run(alive_key(rc.node), {"EXISTS", alive_key(rc.node)}, [v, decide](reply_view a) {
            v->has_key = a && a->type == REDIS_REPLY_INTEGER && a->integer == 1;
            decide();
          })) {
        return done(std::nullopt);
      }
      topology_->listeners(channel, [v, decide](long long n) {
        v->listening = n >= 1;
        decide();
      });
    });
    if (!sent) done(std::nullopt);
  });
}

void redis_backplane::send_remote(const remote_connection& where, message_ptr payload, bool binary,
                                  std::function<void(remote_result)> done) {
  asio::post(ioc_, [this, node = where.node, id = where.connection_id, payload, binary,
                    done = std::move(done)] {
    const std::uint64_t rid = ++next_rid_;
    const json op = {{"op", "send"},
                     {"connection", id},
                     {"binary", binary},
                     {"payload", binary ? ws::base64_encode(payload->bytes()) : payload->bytes()},
                     {"rid", rid},
                     {"reply", node_}};
    const bool sent =
        publish_to(node_channel(node), op.dump(-1, ' ', false, json::error_handler_t::replace),
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

void redis_backplane::post_remote(const std::string& node, std::string token, std::string body,
                                  bool end, post_reply done) {
  asio::post(ioc_, [this, node, token = std::move(token), body = std::move(body), end,
                    done = std::move(done)]() mutable {
    const std::uint64_t rid = ++next_rid_;
    const json op = {{"op", "post"}, {"token", token}, {"payload", body},
                     {"end", end},   {"rid", rid},     {"reply", node_}};
    const bool sent =
        publish_to(node_channel(node), op.dump(-1, ' ', false, json::error_handler_t::replace),
                   [this, rid](reply_view r) {
                     if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0)
                       finish_post(rid, 404, {});  // nobody listens there: the node is gone
                   });
    if (!sent) return done(503, {});
    auto timer = std::make_shared<asio::steady_timer>(ioc_, rc_.remote_timeout);
    posts_[rid] = {std::move(done), timer};
    timer->async_wait([this, rid](boost::system::error_code ec) {
      if (!ec) finish_post(rid, 503, {});
    });
  });
}

void redis_backplane::finish_post(std::uint64_t rid, int status, std::string body) {
  const auto it = posts_.find(rid);
  if (it == posts_.end()) return;
  auto done = std::move(it->second.done);
  it->second.timer->cancel();
  posts_.erase(it);
  done(status, std::move(body));
}

void redis_backplane::close_remote(const remote_connection& where, std::uint16_t code,
                                   std::string reason) {
  asio::post(
      ioc_, [this, node = where.node, id = where.connection_id, code, reason = std::move(reason)] {
        const json op = {{"op", "close"}, {"connection", id}, {"code", code}, {"reason", reason}};
        publish_to(node_channel(node), op.dump(), [](reply_view) {});
      });
}

void redis_backplane::ask_other_nodes(std::string kind, std::string arg,
                                      std::function<void(cluster_replies)> done) {
  asio::post(
      ioc_, [this, kind = std::move(kind), arg = std::move(arg), done = std::move(done)]() mutable {
        // The nodes refreshed within redis.node_ttl are the ones expected to answer.
        const bool sent =
            run(nodes_key(), live_nodes_command(), [this, kind, arg, done](reply_view r) mutable {
              if (!r || r->type != REDIS_REPLY_ARRAY) return done({});
              pending_question q;
              for (std::size_t i = 0; i < r->elements; ++i) {
                std::string node = reply_text(r->element[i]);
                if (node != node_) q.waiting.insert(std::move(node));
              }
              q.replies.asked = true;
              if (q.waiting.empty()) return done(std::move(q.replies));
              const std::uint64_t rid = ++next_rid_;
              const json op = {{"op", "ask"}, {"kind", kind},   {"arg", arg},
                               {"rid", rid},  {"reply", node_}, {"origin", node_}};
              if (!publish_to(names_.control(), op.dump(), [](reply_view) {})) {
                return done({});
              }
              q.done = std::move(done);
              q.timer = std::make_shared<asio::steady_timer>(ioc_, rc_.remote_timeout);
              q.timer->async_wait([this, rid](boost::system::error_code ec) {
                if (!ec) finish_question(rid);
              });
              questions_.emplace(rid, std::move(q));
            });
        if (!sent) done({});
      });
}

void redis_backplane::finish_question(std::uint64_t rid) {
  const auto it = questions_.find(rid);
  if (it == questions_.end()) return;
  pending_question q = std::move(it->second);
  questions_.erase(it);
  q.timer->cancel();
  q.replies.silent.assign(q.waiting.begin(), q.waiting.end());
  std::sort(q.replies.silent.begin(), q.replies.silent.end());
  q.done(std::move(q.replies));
}

void redis_backplane::on_node_op(std::string_view payload) {
  node_op op = parse_node_op(payload, cfg_.limits.json_max_depth);
  if (op.op == "probe") {
    if (op.nonce == probe_nonce_ && probe_outstanding_) {
      probe_outstanding_ = false;
      if (probe_failed_ || !probe_confirmed_) {
        probe_failed_ = false;
        probe_confirmed_ = true;
        update_status();
      }
    }
    return;
  }
  if (op.op == "answer") {
    const auto it = questions_.find(op.rid);
    if (it == questions_.end() || op.node.empty()) return;  // late, or not ours
    auto& q = it->second;
    // A node answers once; one not listed as alive (it just started) is welcome too, up to as
    // many answers as nodes are listed (anyone may PUBLISH here).
    const bool expected = q.waiting.erase(op.node) > 0;
    const bool again =
        !expected && (q.replies.answered.size() >= kMaxNodes ||
                      std::any_of(q.replies.answered.begin(), q.replies.answered.end(),
                                  [&](const node_reply& r) { return r.node == op.node; }));
    if (!again) q.replies.answered.push_back({op.node, std::move(op.answer)});
    if (q.waiting.empty()) finish_question(op.rid);
    return;
  }
  if (op.op == "posted") {
    finish_post(op.rid, op.status == 0 ? 503 : op.status, std::move(op.payload));
    return;
  }
  if (op.op == "post") {
    if (!post_handler_ || op.reply.empty()) return;
    const std::uint64_t rid = op.rid;
    post_handler_(std::move(op.token), std::move(op.payload), op.end,
                  [this, rid, reply_to = std::move(op.reply)](int status, std::string body) {
                    asio::post(ioc_, [this, rid, reply_to, status, body = std::move(body)] {
                      const json res = {
                          {"op", "posted"}, {"rid", rid}, {"status", status}, {"payload", body}};
                      publish_to(node_channel(reply_to), res.dump(), [](reply_view) {});
                    });
                  });
    return;
  }
  if (op.op == "result") {
    finish_request(op.rid, op.result == "queued"    ? remote_result::queued
                           : op.result == "dropped" ? remote_result::dropped
                                                    : remote_result::gone);
    return;
  }
  const auto id = connection_id::parse(op.connection);
  const auto conn = id ? registry_.find(*id) : nullptr;
  if (op.op == "close") {
    if (conn) conn->close(op.code, std::move(op.reason));
    return;
  }
  if (op.op != "send") return;
  const std::uint64_t rid = op.rid;
  const std::string reply_to = std::move(op.reply);
  const auto answer = [this, rid, reply_to](std::string_view result) {
    const json res = {{"op", "result"}, {"rid", rid}, {"result", result}};
    publish_to(node_channel(reply_to), res.dump(), [](reply_view) {});
  };
  if (!conn) return answer("gone");
  const bool binary = op.binary;
  std::string text = std::move(op.payload);
  if (binary) text = ws::base64_decode(text).value_or(std::string());
  auto payload_ptr = make_message(std::move(text));
  // The send happens on the connection's worker, where the queue's answer is exact.
  post_(conn->info().worker, [this, conn, payload_ptr, binary, answer] {
    const send_result r = conn->send(payload_ptr, binary);
    asio::post(ioc_, [r, answer] {
      answer(r == send_result::queued ? "queued" : r == send_result::dropped ? "dropped" : "gone");
    });
  });
}

void redis_backplane::finish_request(std::uint64_t rid, remote_result r) {
  const auto it = requests_.find(rid);
  if (it == requests_.end()) return;
  auto done = std::move(it->second.done);
  it->second.timer->cancel();
  requests_.erase(it);
  done(r);
}

std::vector<std::string> redis_backplane::directory_fields(const connection& c) {
  const auto& i = c.info();
  return {std::string(i.id.view()),           "user",
          std::string(i.user_id()),           "connectedAt",
          std::to_string(i.connected_at),     "lastActiveAt",
          std::to_string(c.last_active_at()), "sourceIp",
          std::string(i.source_ip()),         "userAgent",
          std::string(i.user_agent()),        "subprotocol",
          std::string(i.subprotocol())};
}

void redis_backplane::register_connection(const std::vector<std::string>& fields) {
  std::vector<std::string> args{"HSET", conn_key(fields[0]), "node", node_};
  args.insert(args.end(), fields.begin() + 1, fields.end());
  const std::string key = conn_key(fields[0]);
  run(key, std::move(args), [](reply_view) {});
  run(key, {"PEXPIRE", key, std::to_string(rc_.directory_ttl.count())}, [](reply_view) {});
}

void redis_backplane::schedule_refresh() {
  refresh_timer_.expires_after(rc_.directory_ttl / 3);
  refresh_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    if (commands_ready()) {
      const std::string ttl = std::to_string(rc_.directory_ttl.count());
      for (const auto& c : registry_.all()) {
        const std::string key = conn_key(std::string(c->id().view()));
        run(key, {"HSET", key, "lastActiveAt", std::to_string(c->last_active_at())},
            [](reply_view) {});
        run(key, {"PEXPIRE", key, ttl}, [](reply_view) {});
      }
      for (const auto& [channel, members] : presence_local_) {
        const std::string key = presence_key(channel);
        run(key, {"PEXPIRE", key, ttl}, [](reply_view) {});
      }
    }
    schedule_refresh();
  });
}

}  // namespace herald::redis
