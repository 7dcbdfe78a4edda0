// Where this node is in each history channel it follows: publications with an offset are handed
// to the workers in offset order, once each. A gap (a publication missed while Redis or the
// subscription was away, or one that arrived out of order) is read back from the history
// before anything after it is handed over. A history that was replaced (a new epoch: Redis lost
// it, or it expired) or that lost its newest publications (a failover to a replica that had
// not received them) is told to the subscribers with a resync, never left as a silent gap.
//
// Socket-free: the read, the delivery, the delay before a retry and whether a channel's
// subscription is confirmed are injected, so every case is tested without Redis. Runs on one
// thread (the backplane's); the counters may be read from any.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>

#include "herald/common/log.hpp"
#include "herald/delivery/history.hpp"
#include "herald/delivery/publication.hpp"

namespace herald::redis {

class history_sequencer {
 public:
  struct hooks {
    // Reads the channel's history after `since`, at most `limit` entries; `done` on this thread
    // (a failed read is a page with ok = false).
    std::function<void(const std::string& channel, std::uint64_t since, std::size_t limit,
                       std::function<void(history_page)> done)>
        read;
    std::function<void(publication)> deliver;
    // Calls `fn` a little later, on this thread (a failed read is tried again).
    std::function<void(std::function<void()> fn)> later;
    // Whether the channel's subscription is confirmed now: what is published after that
    // arrives, so a read then covers the gap.
    std::function<bool(const std::string& channel)> subscribed;
  };
  struct counters {
    std::atomic<std::uint64_t> gap_fills{0}, recovered{0}, lost{0}, duplicates{0}, epoch_changes{0},
        resyncs{0}, rewinds{0}, overflows{0};
  };

  // `max_held`: publications of one channel held while its gap is read back; past it, what is
  // held is handed over and the gap counted lost (memory stays bounded when Redis is slow).
  history_sequencer(std::size_t max_held, logger& log, hooks h);

  // A publication with an offset arrived through pub/sub.
  void on_stored(publication p);
  // A history read (a subscriber's resume) told where the channel is. If nothing of it was
  // handed over yet, that is where this node stands: whatever is published after the read and
  // before the subscription is confirmed is read back on confirmation instead of being missed.
  void seed(const std::string& channel, const history_page& page);
  // The channel's subscription was lost (or every subscription: all()): what is published
  // meanwhile is read back once it is confirmed again.
  void interrupted(const std::string& channel);
  void interrupted_all();
  // The channel's subscription is confirmed: read back what it missed, if anything.
  void confirmed(const std::string& channel);
  // Commands work again: fills that failed meanwhile start now (for confirmed channels).
  void commands_back();
  // Nobody here follows the channel any more.
  void forget(const std::string& channel);

  const counters& stats() const { return stats_; }
  std::size_t channels() const { return streams_.size(); }

 private:
  struct stream {
    std::string epoch;
    std::uint64_t last = 0;   // the newest offset of `epoch` handed over (0: none yet)
    bool positioned = false;  // epoch and last say where this node is; else take what comes
    bool filling = false;
    bool needs_fill = false;  // the subscription was lost: read what was missed
    // The subscription was lost since the position was last confirmed: if the history turns
    // out to have been replaced meanwhile, publications of the old epoch may have been missed.
    bool interrupted = false;
    std::map<std::uint64_t, publication> held;  // arrived during a fill, by offset
  };

  void accept(stream& s, publication p);
  void start_fill(const std::string& channel);
  void retry_fill_later(const std::string& channel);
  void filled(const std::string& channel, history_page page);
  void epoch_changed(const std::string& channel, stream& st, const history_page& page);
  void rewound(const std::string& channel, stream& st, const history_page& page);
  void finish_fill(stream& s);

  const std::size_t max_held_;
  logger& log_;
  hooks hooks_;
  std::unordered_map<std::string, stream> streams_;
  counters stats_;
};

}  // namespace herald::redis
