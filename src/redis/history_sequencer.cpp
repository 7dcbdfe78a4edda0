#include "redis/history_sequencer.hpp"

namespace herald::redis {

history_sequencer::history_sequencer(std::size_t max_held, logger& log, hooks h)
    : max_held_(max_held), log_(log), hooks_(std::move(h)) {}

void history_sequencer::on_stored(publication p) {
  auto& s = streams_[p.target];
  if (s.filling || s.needs_fill) {
    if (s.held.size() < max_held_) {
      s.held.emplace(p.offset, std::move(p));
      return;
    }
    // Holding more would be unbounded: hand over what we have and count the gap.
    stats_.overflows.fetch_add(1, std::memory_order_relaxed);
    finish_fill(s);
  }
  accept(s, std::move(p));
}

void history_sequencer::accept(stream& s, publication p) {
  if (!s.positioned) {
    // The first one this node sees of the channel: where it stands from now on.
    s.positioned = true;
    s.epoch = p.epoch;
    s.last = p.offset;
    return hooks_.deliver(std::move(p));
  }
  if (p.epoch != s.epoch) {
    if (!s.interrupted && p.offset == 1) {
      // A new life of the history (it expired, or was deleted), seen from its very first
      // publication while subscribed throughout: nothing can have been missed.
      s.epoch = p.epoch;
      s.last = 1;
      return hooks_.deliver(std::move(p));
    }
    // Anything else is read from the history: the fill sees the new epoch and decides.
    const std::string channel = p.target;
    s.held.emplace(p.offset, std::move(p));
    return start_fill(channel);
  }
  if (p.offset <= s.last) {
    stats_.duplicates.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (p.offset == s.last + 1) {
    s.last = p.offset;
    return hooks_.deliver(std::move(p));
  }
  const std::string channel = p.target;
  s.held.emplace(p.offset, std::move(p));
  start_fill(channel);
}

void history_sequencer::seed(const std::string& channel, const history_page& page) {
  if (!page.ok || page.epoch.empty()) return;
  auto& s = streams_[channel];
  if (s.positioned) return;
  s.positioned = true;
  s.epoch = page.epoch;
  s.last = page.top;
  if (!hooks_.subscribed(channel)) s.needs_fill = true;
}

void history_sequencer::interrupted(const std::string& channel) {
  const auto it = streams_.find(channel);
  if (it == streams_.end()) return;
  it->second.needs_fill = true;
  it->second.interrupted = it->second.interrupted || it->second.positioned;
}

void history_sequencer::interrupted_all() {
  for (auto& [channel, s] : streams_) {
    s.needs_fill = true;
    s.interrupted = s.interrupted || s.positioned;
  }
}

void history_sequencer::confirmed(const std::string& channel) {
  const auto it = streams_.find(channel);
  if (it != streams_.end() && it->second.needs_fill) start_fill(channel);
}

void history_sequencer::commands_back() {
  for (auto& [channel, s] : streams_) {
    if (s.needs_fill && !s.filling && hooks_.subscribed(channel)) start_fill(channel);
  }
}

void history_sequencer::forget(const std::string& channel) {
  streams_.erase(channel);
}

void history_sequencer::retry_fill_later(const std::string& channel) {
  hooks_.later([this, channel] {
    const auto it = streams_.find(channel);
    if (it == streams_.end() || !it->second.needs_fill || it->second.filling) return;
    if (hooks_.subscribed(channel)) start_fill(channel);
  });
}

void history_sequencer::start_fill(const std::string& channel) {
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
  stats_.gap_fills.fetch_add(1, std::memory_order_relaxed);
  hooks_.read(channel, s.last, max_held_,
              [this, channel](history_page page) { filled(channel, std::move(page)); });
}

void history_sequencer::filled(const std::string& channel, history_page page) {
  const auto it = streams_.find(channel);
  if (it == streams_.end()) return;  // nobody here wants the channel any more
  auto& st = it->second;
  st.filling = false;
  if (!page.ok) {
    // Redis is away again, or still loading its data: retried shortly (and when commands
    // work again).
    st.needs_fill = true;
    log_.warn("backplane.gap_fill_failed", {{"channel", channel}, {"error", page.error}});
    retry_fill_later(channel);
    return;
  }
  if (page.epoch != st.epoch) return epoch_changed(channel, st, page);
  if (page.top < st.last) return rewound(channel, st, page);
  std::size_t n = 0;
  for (auto& e : page.entries) {
    if (e.offset <= st.last) continue;
    if (e.offset != st.last + 1) stats_.lost.fetch_add(e.offset - st.last - 1);
    st.last = e.offset;
    ++n;
    hooks_.deliver(
        publication::stored(channel, std::move(e.data_json), std::move(e.id), e.offset, st.epoch));
  }
  // The history is the one we followed, and we have all of it up to here.
  st.interrupted = false;
  stats_.recovered.fetch_add(n, std::memory_order_relaxed);
  if (n) log_.info("backplane.gap_filled", {{"channel", channel}, {"recovered", n}});
  finish_fill(st);
  // The subscription was lost again during this fill: read on from here.
  if (st.needs_fill && hooks_.subscribed(channel)) start_fill(channel);
}

// The fill found another history than the one this node followed (Redis lost its data, or the
// channel's history expired or was deleted, and publishing went on in a new epoch). The new
// epoch is read from its start, so connected clients miss none of it. If this node was away
// meanwhile, publications of the old epoch may have been lost with it, and no one can tell
// which: its subscribers are told to resync first.
void history_sequencer::epoch_changed(const std::string& channel, stream& st,
                                      const history_page& page) {
  stats_.epoch_changes.fetch_add(1, std::memory_order_relaxed);
  const bool may_have_lost = st.interrupted;
  log_.warn("backplane.history_replaced", {{"channel", channel},
                                           {"epoch", st.epoch},
                                           {"last", st.last},
                                           {"new_epoch", page.epoch},
                                           {"newest", page.top},
                                           {"resync", may_have_lost}});
  if (may_have_lost) {
    stats_.resyncs.fetch_add(1, std::memory_order_relaxed);
    hooks_.deliver(publication::resync(
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
// are moved back to the top with a resync (not a silent gap), and the history is read on from
// there: what was published since, on the new primary, included.
void history_sequencer::rewound(const std::string& channel, stream& st, const history_page& page) {
  stats_.rewinds.fetch_add(1, std::memory_order_relaxed);
  stats_.resyncs.fetch_add(1, std::memory_order_relaxed);
  log_.warn("backplane.history_rewound",
            {{"channel", channel}, {"epoch", st.epoch}, {"last", st.last}, {"newest", page.top}});
  hooks_.deliver(publication::resync(
      channel, st.epoch, page.top,
      "the channel's history lost the publications after offset " + std::to_string(page.top) +
          " (Redis failed over to a copy that had not received them); those delivered after "
          "it may be followed by others with the same offsets"));
  st.last = page.top;
  st.interrupted = false;
  start_fill(channel);
}

// Hands over what was held, in order, counting what could not be recovered.
void history_sequencer::finish_fill(stream& s) {
  auto held = std::move(s.held);
  s.held.clear();
  for (auto& [offset, p] : held) {
    if (p.epoch == s.epoch && s.positioned && offset > s.last + 1)
      stats_.lost.fetch_add(offset - s.last - 1, std::memory_order_relaxed);
    if (p.epoch == s.epoch && s.positioned && offset <= s.last) {
      stats_.duplicates.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    s.positioned = true;
    s.epoch = p.epoch;
    s.last = offset;
    hooks_.deliver(std::move(p));
  }
}

}  // namespace herald::redis
