// The single-node backplane: nothing to forward and nobody else to find; history and presence
// live in memory (and are gone after a restart: a new epoch tells resuming clients so).
#include <map>
#include <mutex>

#include "herald/delivery/backplane.hpp"

namespace herald {
namespace {

// The backplane of a single node.
class local_backplane final : public backplane {
 public:
  local_backplane(const config& cfg, delivery deliver, worker_poster post)
      : cfg_(cfg), deliver_(std::move(deliver)), post_(std::move(post)), history_(cfg) {}

  void forward(const publication&, std::function<void(bool)> done) override { done(false); }
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
  void send_remote(const remote_connection&, message_ptr, bool,
                   std::function<void(remote_result)> done) override {
    done(remote_result::gone);
  }
  void close_remote(const remote_connection&, std::uint16_t, std::string) override {}

  void publish_stored(const publication& p, const history_rule& rule,
                      std::function<void(stored_result)> done) override {
    stored_result r;
    {
      // Stored and handed to the workers under one lock: workers see offsets in order.
      std::lock_guard lock(mutex_);
      r = history_.append(p.target, rule, p.data_json, p.id, p.idempotency_key, now_ms());
      if (r.ok && !r.duplicate) {
        auto stored = publication::stored(p.target, p.data_json, p.id, r.offset, r.epoch);
        stored.exclude = p.exclude;
        deliver_(std::move(stored));
      }
    }
    done(std::move(r));
  }

  void read_history(history_query q, const history_rule& rule, unsigned worker,
                    std::function<void(history_page)> done) override {
    // Answered on the worker after every publication stored before the read (posted under
    // the same lock, so they are ahead in the worker's queue).
    std::lock_guard lock(mutex_);
    post_(worker, [page = history_.read(q, rule, now_ms()), done = std::move(done)]() mutable {
      done(std::move(page));
    });
  }

  void ack(const std::string& channel, std::uint64_t offset,
           std::function<void(std::optional<std::uint64_t>)> done) override {
    std::uint64_t acked;
    {
      std::lock_guard lock(mutex_);
      acked = history_.ack(channel, offset);
    }
    done(acked);
  }

  void presence_join(const std::string& channel, const connection& c) override {
    std::lock_guard lock(mutex_);
    presence_[channel][std::string(c.id().view())] = c.info().user_id();
  }

  void presence_leave(const std::string& channel, const connection& c) override {
    std::lock_guard lock(mutex_);
    const auto it = presence_.find(channel);
    if (it == presence_.end()) return;
    it->second.erase(std::string(c.id().view()));
    if (it->second.empty()) presence_.erase(it);
  }

  void presence(const std::string& channel, std::size_t limit,
                std::function<void(presence_result)> done) override {
    presence_result r;
    r.ok = true;
    {
      std::lock_guard lock(mutex_);
      if (const auto it = presence_.find(channel); it != presence_.end()) {
        for (const auto& [id, user] : it->second) {
          if (r.members.size() == limit) {
            r.truncated = true;
            break;
          }
          r.members.push_back({id, user, cfg_.node_id});
        }
      }
    }
    done(std::move(r));
  }

  void append_stream(std::string, std::vector<std::pair<std::string, std::string>>, std::size_t,
                     std::function<void(bool, std::string)> done) override {
    done(false, "Redis streams need the Redis backplane");
  }

  backplane_status status() const override { return {}; }

  void write_metrics(prometheus_text& out) const override {
    std::size_t streams;
    {
      std::lock_guard lock(mutex_);
      streams = history_.channels();
    }
    out.family("herald_history_channels", "gauge", "Channels with history kept in memory");
    out.sample("herald_history_channels", {}, static_cast<std::uint64_t>(streams));
  }

 private:
  const config& cfg_;
  delivery deliver_;
  worker_poster post_;
  mutable std::mutex mutex_;
  memory_history history_;
  std::map<std::string, std::map<std::string, std::string>> presence_;  // channel -> id -> user
};

}  // namespace

std::unique_ptr<backplane> make_local_backplane(const config& cfg, delivery deliver,
                                                worker_poster post) {
  return std::make_unique<local_backplane>(cfg, std::move(deliver), std::move(post));
}

}  // namespace herald
