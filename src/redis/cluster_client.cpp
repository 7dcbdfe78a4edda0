#include "redis/cluster_client.hpp"

#include <hiredis/hiredis.h>

namespace herald::redis {
namespace {

std::string_view error_text(reply_view r) {
  if (!r || r->type != REDIS_REPLY_ERROR || !r->str) return {};
  return {r->str, r->len};
}

std::string address(const std::string& host, int port) {
  return host + ":" + std::to_string(port);
}

}  // namespace

cluster_client::cluster_client(asio::io_context& ioc, options opts, callbacks cb)
    : ioc_(ioc),
      opts_(std::move(opts)),
      cb_(std::move(cb)),
      refresh_timer_(ioc),
      sweep_timer_(ioc) {}

cluster_client::~cluster_client() {
  for (auto& [addr, c] : nodes_)
    c->stop();
  if (seed_) seed_->stop();
}

void cluster_client::start() {
  stopped_ = false;
  refresh();
}

void cluster_client::stop() {
  stopped_ = true;
  ready_ = false;
  refresh_timer_.cancel();
  sweep_timer_.cancel();
  if (seed_) seed_->stop();
  seed_.reset();
  auto nodes = std::move(nodes_);
  nodes_.clear();
  for (auto& [addr, c] : nodes)
    c->stop();
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& r : waiting)
    r->done(nullptr);
}

void cluster_client::refresh() {
  if (stopped_) return;
  if (refreshing_) {
    refresh_again_ = true;
    return;
  }
  refreshing_ = true;
  refresh_again_ = false;
  ++refreshes_;
  // Ask the primaries we know first (they are the freshest), then the configured seeds.
  candidates_.clear();
  for (const cluster_node* p : map_.primaries())
    candidates_.push_back({p->host, p->port});
  for (const auto& s : opts_.seeds)
    candidates_.push_back({s.host, s.port});
  read_topology(0);
}

void cluster_client::read_topology(std::size_t index) {
  if (stopped_) return;
  if (index >= candidates_.size()) {
    // Nobody answered: what waits for a map fails now, and we try again shortly.
    refreshing_ = false;
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& r : waiting)
      r->done(nullptr);
    refresh_timer_.expires_after(opts_.retry_delay * 4);
    refresh_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->refresh();
    });
    return;
  }
  const auto [host, port] = candidates_[index];
  const auto ask = [self = shared_from_this(), index, host](redis_connection& c) {
    const bool sent = c.command({"CLUSTER", "SHARDS"}, [self, index, host](reply_view r) {
      std::string error;
      auto map = cluster_map::from_shards(r, host, self->opts_.node.tls != nullptr, &error);
      if (self->seed_) {
        self->seed_->stop();
        self->seed_.reset();
      }
      if (!map || map->covered() == 0) return self->read_topology(index + 1);
      self->refreshing_ = false;
      self->apply(std::move(*map));
      if (self->refresh_again_) {
        self->refresh_timer_.expires_after(self->opts_.retry_delay);
        self->refresh_timer_.async_wait([self](boost::system::error_code ec) {
          if (!ec) self->refresh();
        });
      }
    });
    if (!sent) self->read_topology(index + 1);
  };
  // A node we are connected to answers at once; otherwise a connection just for this.
  if (const auto it = nodes_.find(address(host, port)); it != nodes_.end() && it->second->ready())
    return ask(*it->second);
  redis_connection::options o = opts_.node;
  o.endpoint.host = host;
  o.endpoint.port = port;
  o.endpoint.unix_path.clear();
  redis_connection::callbacks cb;
  cb.on_ready = [self = shared_from_this(), ask] {
    if (self->seed_) ask(*self->seed_);
  };
  cb.on_lost = [self = shared_from_this(), index](const std::string&) {
    if (!self->seed_) return;
    self->seed_.reset();
    self->read_topology(index + 1);
  };
  if (seed_) seed_->stop();
  seed_ = std::make_shared<redis_connection>(ioc_, o, cb);
  seed_->start();
}

void cluster_client::apply(cluster_map map) {
  map_ = std::move(map);
  have_map_ = true;
  std::map<std::string, bool> keep;
  for (const cluster_node* p : map_.primaries()) {
    node(p->host, p->port);
    keep[p->address()] = true;
  }
  // Nodes that are no longer primaries (failed over, or removed) are let go.
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    if (keep.count(it->first)) {
      ++it;
    } else {
      it->second->stop();
      it = nodes_.erase(it);
    }
  }
  update_ready();
  if (cb_.on_topology) cb_.on_topology(map_);
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& r : waiting)
    route(r);
}

void cluster_client::update_ready() {
  // Every slot covered, and every shard serving slots has an online primary we are connected to.
  bool now = have_map_ && map_.covered() == cluster_slots;
  for (const cluster_shard& shard : map_.shards()) {
    if (!now || shard.slots.empty()) continue;
    const cluster_node* p = shard.primary();
    const auto it = p ? nodes_.find(p->address()) : nodes_.end();
    now = it != nodes_.end() && it->second->ready();
  }
  if (now == ready_) return;
  ready_ = now;
  if (ready_) {
    if (cb_.on_ready) cb_.on_ready();
  } else if (cb_.on_lost) {
    cb_.on_lost("a primary of the cluster is not reachable");
  }
}

std::shared_ptr<redis_connection> cluster_client::node(const std::string& host, int port) {
  const std::string key = address(host, port);
  if (const auto it = nodes_.find(key); it != nodes_.end()) return it->second;
  redis_connection::options o = opts_.node;
  o.endpoint.host = host;
  o.endpoint.port = port;
  o.endpoint.unix_path.clear();
  std::weak_ptr<cluster_client> weak = weak_from_this();
  redis_connection::callbacks cb;
  cb.on_ready = [weak] {
    auto self = weak.lock();
    if (!self || self->stopped_) return;
    self->update_ready();
    auto waiting = std::move(self->waiting_);
    self->waiting_.clear();
    for (auto& r : waiting)
      self->route(r);
  };
  cb.on_lost = [weak, key](const std::string&) {
    auto self = weak.lock();
    if (!self || self->stopped_) return;
    self->update_ready();
    // Its slots may have moved (a failover): read the topology again, and reconnect if it is
    // still a primary then.
    self->refresh();
    auto timer = std::make_shared<asio::steady_timer>(self->ioc_, self->opts_.retry_delay * 4);
    timer->async_wait([weak, key, timer](boost::system::error_code ec) {
      auto s = weak.lock();
      if (ec || !s || s->stopped_) return;
      if (const auto it = s->nodes_.find(key); it != s->nodes_.end() && !it->second->ready())
        it->second->start();
    });
  };
  auto c = std::make_shared<redis_connection>(ioc_, o, cb);
  nodes_[key] = c;
  c->start();
  return c;
}

void cluster_client::command(std::string key, std::vector<std::string> args,
                             std::function<void(reply_view)> done) {
  auto r = std::make_shared<request>();
  r->key = std::move(key);
  r->args = std::move(args);
  r->done = std::move(done);
  if (stopped_) return r->done(nullptr);
  route(r);
}

void cluster_client::route(std::shared_ptr<request> r) {
  if (!r->ask_host.empty()) {
    // One command to the importing node, behind ASKING; the map does not change.
    auto target = node(r->ask_host, r->ask_port);
    if (!target->ready()) return wait(r);
    r->ask_host.clear();
    return send(r, target, true);
  }
  const cluster_node* owner = have_map_ ? map_.primary_for_key(r->key) : nullptr;
  std::shared_ptr<redis_connection> c;
  if (owner) c = node(owner->host, owner->port);
  if (!c || !c->ready()) {
    if (!owner) refresh();  // no map yet, or the slot has no primary now
    return wait(r);
  }
  send(r, c, false);
}

void cluster_client::send(std::shared_ptr<request> r, std::shared_ptr<redis_connection> to,
                          bool asking) {
  if (asking) to->command({"ASKING"}, [](reply_view) {});
  const std::string host = to->target().host;
  const bool sent = to->command(r->args, [self = shared_from_this(), r, host](reply_view reply) {
    const std::string_view error = error_text(reply);
    if (error.empty()) return r->done(reply);
    if (const auto redirect = parse_redirect(error, host)) {
      if (r->hops >= self->opts_.max_redirects) return r->done(reply);
      ++r->hops;
      ++self->redirects_;
      if (redirect->type == redirect::kind::ask) {
        r->ask_host = redirect->host;
        r->ask_port = redirect->port;
        return self->route(r);
      }
      // MOVED: the slot lives elsewhere now; the whole map is read again (a failover moves
      // every slot of a primary at once), and this command goes where Redis said.
      self->refresh();
      auto target = self->node(redirect->host, redirect->port);
      if (target->ready()) return self->send(r, target, false);
      return self->wait(r);
    }
    if (error.starts_with("TRYAGAIN") && r->hops < self->opts_.max_redirects) {
      ++r->hops;
      return self->retry_later(r);
    }
    r->done(reply);
  });
  if (sent) return;
  if (!to->ready()) return wait(r);
  r->done(nullptr);  // the pipeline is full
}

void cluster_client::wait(std::shared_ptr<request> r) {
  if (stopped_ || waiting_.size() >= opts_.node.max_pending) return r->done(nullptr);
  if (r->deadline == steady_clock::time_point{})
    r->deadline = steady_clock::now() + opts_.node.command_timeout;
  waiting_.push_back(std::move(r));
  if (sweeping_) return;
  sweeping_ = true;
  sweep_timer_.expires_after(opts_.retry_delay * 2);
  sweep_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    self->sweeping_ = false;
    if (!ec) self->sweep();
  });
}

void cluster_client::sweep() {
  const auto now = steady_clock::now();
  std::vector<std::shared_ptr<request>> expired, kept;
  for (auto& r : waiting_)
    (r->deadline <= now ? expired : kept).push_back(std::move(r));
  waiting_ = std::move(kept);
  for (auto& r : expired)
    r->done(nullptr);
  if (waiting_.empty() || sweeping_) return;
  sweeping_ = true;
  sweep_timer_.expires_after(opts_.retry_delay * 2);
  sweep_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    self->sweeping_ = false;
    if (!ec) self->sweep();
  });
}

void cluster_client::retry_later(std::shared_ptr<request> r) {
  auto timer = std::make_shared<asio::steady_timer>(ioc_, opts_.retry_delay);
  timer->async_wait([self = shared_from_this(), r, timer](boost::system::error_code ec) {
    if (ec || self->stopped_) return r->done(nullptr);
    self->route(r);
  });
}

void cluster_client::on_each_primary(std::vector<std::string> args,
                                     std::function<void(std::size_t, std::size_t)> done) {
  const auto primaries = map_.primaries();
  if (!have_map_ || primaries.empty()) return done(0, 1);
  struct tally {
    std::size_t ok = 0, failed = 0, total = 0;
    std::function<void(std::size_t, std::size_t)> done;
  };
  auto t = std::make_shared<tally>();
  t->total = primaries.size();
  t->done = std::move(done);
  const auto count = [t](bool ok) {
    ++(ok ? t->ok : t->failed);
    if (t->ok + t->failed == t->total) t->done(t->ok, t->failed);
  };
  for (const cluster_node* p : primaries) {
    auto c = node(p->host, p->port);
    const bool sent =
        c->command(args, [count](reply_view r) { count(r && r->type != REDIS_REPLY_ERROR); });
    if (!sent) count(false);
  }
}

}  // namespace herald::redis
