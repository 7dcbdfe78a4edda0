// What makes several nodes act as one: publications forwarded to the other nodes, this node's
// interest in channels and users, and a directory of connections so any node can reach any
// connection. `local` (one node) or `redis`; the rest of Herald does not know which.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "herald/connection.hpp"
#include "herald/prometheus.hpp"

namespace herald {

struct publication;

// A connection held by another node, as the directory knows it.
struct remote_connection {
  std::string node;
  std::string connection_id;
  std::string user_id;
  system_time_ms connected_at = 0;
  system_time_ms last_active_at = 0;
  std::string source_ip;
  std::string user_agent;
  std::string subprotocol;
};

enum class remote_result { queued, dropped, gone, unavailable };

struct backplane_status {
  bool up = true;
  std::string reason;  // why not, for /readyz
};

class backplane {
 public:
  virtual ~backplane() = default;

  virtual void start() {}
  // Leaves the cluster (directory entries, liveness key), then calls `done`.
  virtual void stop(std::function<void()> done) { done(); }

  // Hands a publication this node has delivered locally to the other nodes. False when it
  // could not be forwarded (the backplane is down, or there is none).
  virtual bool forward(const publication& p) = 0;

  // This node's interest, reported by worker threads on the first subscriber / last one gone.
  // `ready` runs on `worker` once cluster messages for the channel reach this node.
  virtual void channel_added(const std::string& channel, unsigned worker,
                             std::function<void()> ready) = 0;
  virtual void channel_removed(const std::string& channel) = 0;
  virtual void user_added(const std::string& user) = 0;
  virtual void user_removed(const std::string& user) = 0;

  // The connection directory. Callbacks may run on any thread.
  virtual void connection_opened(const connection& c) = 0;
  virtual void connection_closed(const connection& c) = 0;
  virtual void locate(const std::string& connection_id,
                      std::function<void(std::optional<remote_connection>)> done) = 0;
  virtual void send_remote(const remote_connection& where,
                           std::shared_ptr<const std::string> payload, bool binary,
                           std::function<void(remote_result)> done) = 0;
  virtual void close_remote(const remote_connection& where, std::uint16_t code,
                            std::string reason) = 0;
  // Closes a user's connections on the other nodes.
  virtual void close_user(const std::string& user, std::uint16_t code, std::string reason) = 0;

  virtual backplane_status status() const = 0;
  virtual void write_metrics(prometheus_text& out) const = 0;
};

// One node, no Redis: nothing to forward, nobody else to find.
class local_backplane final : public backplane {
 public:
  bool forward(const publication&) override { return false; }
  void channel_added(const std::string&, unsigned, std::function<void()> ready) override {
    ready();
  }
  void channel_removed(const std::string&) override {}
  void user_added(const std::string&) override {}
  void user_removed(const std::string&) override {}
  void connection_opened(const connection&) override {}
  void connection_closed(const connection&) override {}
  void locate(const std::string&,
              std::function<void(std::optional<remote_connection>)> done) override {
    done(std::nullopt);
  }
  void send_remote(const remote_connection&, std::shared_ptr<const std::string>, bool,
                   std::function<void(remote_result)> done) override {
    done(remote_result::gone);
  }
  void close_remote(const remote_connection&, std::uint16_t, std::string) override {}
  void close_user(const std::string&, std::uint16_t, std::string) override {}
  backplane_status status() const override { return {}; }
  void write_metrics(prometheus_text&) const override {}
};

}  // namespace herald
