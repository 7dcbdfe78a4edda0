#include "redis/cluster_subscriber.hpp"

#include <hiredis/hiredis.h>

namespace herald::redis {
namespace {

std::string_view view_of(const redisReply* r) {
  return r && r->str ? std::string_view(r->str, r->len) : std::string_view();
}

}  // namespace

cluster_subscriber::cluster_subscriber(asio::io_context& ioc, redis_connection::options node,
                                       callbacks cb)
    : ioc_(ioc), opts_(std::move(node)), cb_(std::move(cb)) {}

cluster_subscriber::~cluster_subscriber() {
  stop();
}

void cluster_subscriber::stop() {
  stopped_ = true;
  for (auto& [addr, n] : nodes_)
    n.conn->stop();
  nodes_.clear();
}

void cluster_subscriber::restart() {
  if (stopped_) return;
  auto nodes = std::move(nodes_);
  nodes_.clear();
  for (auto& [addr, n] : nodes)
    n.conn->stop();
  for (auto& [channel, st] : channels_) {
    st.pending = false;
    st.home.clear();
    if (st.receiving) interrupted(channel, st);
  }
  for (auto& [channel, st] : channels_)
    home(channel, st);
}

void cluster_subscriber::place(const cluster_map& map) {
  if (stopped_) return;
  map_ = map;
  have_map_ = true;
  for (auto& [channel, st] : channels_)
    home(channel, st);
}

void cluster_subscriber::subscribe(const std::string& channel) {
  if (stopped_ || channels_.count(channel)) return;
  home(channel, channels_[channel]);
}

void cluster_subscriber::unsubscribe(const std::string& channel) {
  const auto it = channels_.find(channel);
  if (it == channels_.end()) return;
  if (const auto n = nodes_.find(it->second.home);
      n != nodes_.end() && (it->second.pending || it->second.receiving)) {
    if (n->second.conn->unsubscribe({channel}, true)) n->second.leaving.insert(channel);
  }
  channels_.erase(it);
}

bool cluster_subscriber::receiving(const std::string& channel) const {
  const auto it = channels_.find(channel);
  return it != channels_.end() && it->second.receiving;
}

// Puts a channel on the primary of its slot: leaves the old one if it moved, subscribes there
// (now, or once that connection is ready).
void cluster_subscriber::home(const std::string& channel, channel_state& st) {
  if (!have_map_) return;
  const cluster_node* owner = map_.primary_for_key(channel);
  if (!owner) return;  // no primary now: it waits for the next map
  const std::string address = owner->address();
  if (st.home != address) {
    if (const auto old = nodes_.find(st.home);
        old != nodes_.end() && (st.pending || st.receiving)) {
      if (old->second.conn->unsubscribe({channel}, true)) old->second.leaving.insert(channel);
    }
    if (st.receiving) interrupted(channel, st);
    st.home = address;
    st.pending = false;
  }
  node(owner->host, owner->port);
  if (!st.pending && !st.receiving) send_subscribe(channel, st);
}

void cluster_subscriber::send_subscribe(const std::string& channel, channel_state& st) {
  const auto n = nodes_.find(st.home);
  if (n == nodes_.end() || !n->second.conn->ready()) return;  // on_ready subscribes it
  st.pending = n->second.conn->subscribe({channel}, true);
}

cluster_subscriber::node_state& cluster_subscriber::node(const std::string& host, int port) {
  const std::string address = host + ":" + std::to_string(port);
  if (const auto it = nodes_.find(address); it != nodes_.end()) return it->second;
  redis_connection::options o = opts_;
  o.endpoint.host = host;
  o.endpoint.port = port;
  o.endpoint.unix_path.clear();
  std::weak_ptr<cluster_subscriber> weak = weak_from_this();
  redis_connection::callbacks cb;
  cb.on_ready = [weak, address] {
    auto self = weak.lock();
    if (!self || self->stopped_) return;
    for (auto& [channel, st] : self->channels_) {
      if (st.home == address && !st.pending && !st.receiving) self->send_subscribe(channel, st);
    }
  };
  cb.on_lost = [weak, address](const std::string&) {
    auto self = weak.lock();
    if (!self || self->stopped_) return;
    for (auto& [channel, st] : self->channels_) {
      if (st.home != address) continue;
      st.pending = false;
      if (st.receiving) self->interrupted(channel, st);
    }
    if (const auto it = self->nodes_.find(address); it != self->nodes_.end())
      it->second.leaving.clear();
    if (self->cb_.need_topology) self->cb_.need_topology();
    // Connect again later; if the map moves its channels elsewhere meanwhile, so be it.
    auto timer = std::make_shared<asio::steady_timer>(self->ioc_, std::chrono::milliseconds(200));
    timer->async_wait([weak, address, timer](boost::system::error_code ec) {
      auto s = weak.lock();
      if (ec || !s || s->stopped_) return;
      if (const auto it = s->nodes_.find(address);
          it != s->nodes_.end() && !it->second.conn->ready())
        it->second.conn->start();
    });
  };
  cb.on_push = [weak, address](reply_view r) {
    if (auto self = weak.lock(); self && !self->stopped_) self->on_push(address, r);
  };
  node_state& n = nodes_[address];
  n.conn = std::make_shared<redis_connection>(ioc_, o, cb);
  n.conn->start();
  return n;
}

void cluster_subscriber::on_push(const std::string& address, reply_view r) {
  if (r && r->type == REDIS_REPLY_ERROR) {
    // A SSUBSCRIBE refused (-MOVED: our map is behind): those still waiting for their
    // confirmation on this node are placed again once the map is read.
    for (auto& [channel, st] : channels_) {
      if (st.home != address || !st.pending) continue;
      st.pending = false;
      st.home.clear();
    }
    if (cb_.need_topology) cb_.need_topology();
    return;
  }
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
  const std::string_view kind = view_of(r->element[0]);
  const std::string channel(view_of(r->element[1]));
  if (kind == "smessage") {
    if (cb_.on_message) cb_.on_message(channel, view_of(r->element[2]));
    return;
  }
  const auto it = channels_.find(channel);
  if (kind == "ssubscribe") {
    if (it == channels_.end() || it->second.home != address) return;  // left meanwhile
    it->second.pending = false;
    it->second.receiving = true;
    if (cb_.on_subscribed) cb_.on_subscribed(channel);
    return;
  }
  if (kind != "sunsubscribe") return;
  auto& leaving = nodes_[address].leaving;
  if (const auto l = leaving.find(channel); l != leaving.end()) {
    leaving.erase(l);  // one we asked for
    return;
  }
  // Redis dropped it: the slot moved away from this node, or the node's role changed.
  if (it == channels_.end() || it->second.home != address) return;
  it->second.pending = false;
  it->second.home.clear();
  if (it->second.receiving) interrupted(channel, it->second);
  if (cb_.need_topology) cb_.need_topology();
}

void cluster_subscriber::interrupted(const std::string& channel, channel_state& st) {
  st.receiving = false;
  if (cb_.on_interrupted) cb_.on_interrupted(channel);
}

}  // namespace herald::redis
