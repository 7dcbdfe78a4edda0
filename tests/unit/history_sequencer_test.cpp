// history_sequencer without Redis: the history is a map the test writes, reads are answered
// when the test says so, and what is delivered is recorded.
#include <deque>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>

#include "redis/history_sequencer.hpp"

namespace herald::redis {
namespace {

class HistorySequencer : public ::testing::Test {
 protected:
  struct pending_read {
    std::string channel;
    std::uint64_t since;
    std::size_t limit;
    std::function<void(history_page)> done;
  };

  explicit HistorySequencer(std::size_t max_held = 100)
      : log_(log_config{log_level::off, log_format::text},
             std::make_shared<spdlog::sinks::null_sink_mt>()) {
    make(max_held);
  }

  void make(std::size_t max_held) {
    history_sequencer::hooks h;
    h.read = [this](const std::string& channel, std::uint64_t since, std::size_t limit,
                    std::function<void(history_page)> done) {
      reads_.push_back({channel, since, limit, std::move(done)});
    };
    h.deliver = [this](publication p) { delivered_.push_back(std::move(p)); };
    h.later = [this](std::function<void()> fn) { later_.push_back(std::move(fn)); };
    h.subscribed = [this](const std::string& channel) { return subscribed_[channel]; };
    seq_ = std::make_unique<history_sequencer>(max_held, log_, std::move(h));
  }

  static publication stored(std::uint64_t offset, const std::string& epoch = "e1",
                            const std::string& channel = "c") {
    return publication::stored(channel, std::to_string(offset), "", offset, epoch);
  }

  // Answers the oldest read from `history` (offset -> epoch of the channel "c").
  void answer(const std::string& epoch, std::uint64_t top, std::vector<std::uint64_t> offsets) {
    ASSERT_FALSE(reads_.empty());
    auto r = std::move(reads_.front());
    reads_.pop_front();
    history_page page;
    page.ok = true;
    page.epoch = epoch;
    page.top = top;
    page.from = r.since;
    for (auto o : offsets) {
      if (o > r.since) page.entries.push_back({o, 0, "", std::to_string(o)});
    }
    r.done(std::move(page));
  }

  // "3 4 5" for three stored publications, "resync@e2:0" for a resync.
  std::string delivered() {
    std::string out;
    for (const auto& p : delivered_) {
      if (!out.empty()) out += ' ';
      if (p.payload && p.payload->bytes().find("\"resync\"") != std::string::npos) {
        out += "resync@" + p.epoch;
      } else {
        out += std::to_string(p.offset);
      }
    }
    delivered_.clear();
    return out;
  }

  logger log_;
  std::unique_ptr<history_sequencer> seq_;
  std::deque<pending_read> reads_;
  std::vector<publication> delivered_;
  std::vector<std::function<void()>> later_;
  std::map<std::string, bool> subscribed_{{"c", true}};
};

TEST_F(HistorySequencer, InOrderOnceEach) {
  for (std::uint64_t o : {5, 6, 7, 7, 6})
    seq_->on_stored(stored(o));
  EXPECT_EQ(delivered(), "5 6 7");
  EXPECT_EQ(seq_->stats().duplicates, 2u);
  EXPECT_TRUE(reads_.empty());
}

TEST_F(HistorySequencer, AGapIsReadBackBeforeWhatFollowsIt) {
  seq_->on_stored(stored(1));
  seq_->on_stored(stored(4));  // 2 and 3 missed
  seq_->on_stored(stored(5));
  EXPECT_EQ(delivered(), "1");
  ASSERT_EQ(reads_.size(), 1u);
  EXPECT_EQ(reads_.front().since, 1u);
  answer("e1", 5, {1, 2, 3, 4, 5});
  EXPECT_EQ(delivered(), "2 3 4 5");
  EXPECT_EQ(seq_->stats().recovered, 4u);
  EXPECT_EQ(seq_->stats().lost, 0u);
  seq_->on_stored(stored(6));
  EXPECT_EQ(delivered(), "6");
}

TEST_F(HistorySequencer, WhatTheHistoryNoLongerHoldsIsCountedLost) {
  seq_->on_stored(stored(1));
  seq_->on_stored(stored(5));
  answer("e1", 5, {4, 5});  // 2 and 3 trimmed
  EXPECT_EQ(delivered(), "1 4 5");
  EXPECT_EQ(seq_->stats().lost, 2u);
}

TEST_F(HistorySequencer, ALostSubscriptionIsReadBackOnceConfirmedAgain) {
  seq_->on_stored(stored(1));
  EXPECT_EQ(delivered(), "1");
  subscribed_["c"] = false;
  seq_->interrupted_all();
  seq_->on_stored(stored(4));  // arrives while the fill waits: held
  EXPECT_TRUE(reads_.empty()) << "no read before the subscription is confirmed";
  seq_->commands_back();
  EXPECT_TRUE(reads_.empty());
  subscribed_["c"] = true;
  seq_->confirmed("c");
  ASSERT_EQ(reads_.size(), 1u);
  answer("e1", 4, {1, 2, 3, 4});
  EXPECT_EQ(delivered(), "2 3 4");
}

TEST_F(HistorySequencer, ANewEpochFromItsFirstPublicationWhileSubscribedNeedsNoRead) {
  seq_->on_stored(stored(7));
  seq_->on_stored(stored(1, "e2"));
  EXPECT_EQ(delivered(), "7 1");
  EXPECT_TRUE(reads_.empty());
}

TEST_F(HistorySequencer, AHistoryReplacedWhileAwayIsAResyncThenTheNewEpochFromItsStart) {
  seq_->on_stored(stored(7));
  delivered();
  seq_->interrupted("c");
  seq_->confirmed("c");
  answer("e2", 2, {1, 2});  // the history was lost and started again
  // The new epoch is read from offset 0.
  ASSERT_EQ(reads_.size(), 1u);
  EXPECT_EQ(reads_.front().since, 0u);
  answer("e2", 2, {1, 2});
  EXPECT_EQ(delivered(), "resync@e2 1 2");
  EXPECT_EQ(seq_->stats().epoch_changes, 1u);
  EXPECT_EQ(seq_->stats().resyncs, 1u);
}

TEST_F(HistorySequencer, AHistoryThatLostItsNewestIsAResyncToItsEnd) {
  for (std::uint64_t o : {1, 2, 3, 4, 5})
    seq_->on_stored(stored(o));
  delivered();
  seq_->interrupted("c");
  seq_->confirmed("c");
  answer("e1", 3, {1, 2, 3});  // a failover to a replica that had only 1-3
  EXPECT_EQ(delivered(), "resync@e1");
  EXPECT_EQ(delivered_.size(), 0u);
  ASSERT_EQ(reads_.size(), 1u);
  EXPECT_EQ(reads_.front().since, 3u);
  answer("e1", 4, {1, 2, 3, 4});  // published on the new primary meanwhile
  EXPECT_EQ(delivered(), "4");
  EXPECT_EQ(seq_->stats().rewinds, 1u);
}

TEST_F(HistorySequencer, AFailedReadIsTriedAgainLater) {
  seq_->on_stored(stored(1));
  seq_->on_stored(stored(3));
  ASSERT_EQ(reads_.size(), 1u);
  history_page failed;
  failed.error = "Redis unavailable";
  auto r = std::move(reads_.front());
  reads_.pop_front();
  r.done(failed);
  EXPECT_TRUE(reads_.empty());
  ASSERT_EQ(later_.size(), 1u);
  later_.front()();
  ASSERT_EQ(reads_.size(), 1u);
  answer("e1", 3, {1, 2, 3});
  EXPECT_EQ(delivered(), "1 2 3");
}

TEST_F(HistorySequencer, ASeedPositionsAChannelNothingWasDeliveredOf) {
  history_page page;
  page.ok = true;
  page.epoch = "e1";
  page.top = 10;
  subscribed_["c"] = false;  // the subscription is still in flight
  seq_->seed("c", page);
  subscribed_["c"] = true;
  seq_->confirmed("c");  // what was published between the read and now is read back
  ASSERT_EQ(reads_.size(), 1u);
  EXPECT_EQ(reads_.front().since, 10u);
  answer("e1", 11, {11});
  EXPECT_EQ(delivered(), "11");
}

TEST_F(HistorySequencer, ForgottenChannelsIgnoreLateReads) {
  seq_->on_stored(stored(1));
  seq_->on_stored(stored(3));
  seq_->forget("c");
  answer("e1", 3, {1, 2, 3});
  EXPECT_EQ(delivered(), "1");
  EXPECT_EQ(seq_->channels(), 0u);
}

class HistorySequencerBound : public HistorySequencer {
 protected:
  HistorySequencerBound() : HistorySequencer(3) {}
};

TEST_F(HistorySequencerBound, HoldsAtMostItsBoundThenHandsOverAndCountsTheGap) {
  seq_->on_stored(stored(1));
  seq_->on_stored(stored(10));  // a gap: a read starts, 10 is held
  ASSERT_EQ(reads_.size(), 1u);
  EXPECT_EQ(reads_.front().limit, 3u) << "the read is bounded too";
  for (std::uint64_t o : {11, 12})
    seq_->on_stored(stored(o));
  EXPECT_EQ(delivered(), "1");
  seq_->on_stored(stored(13));  // a fourth: over the bound
  EXPECT_EQ(delivered(), "10 11 12 13");
  EXPECT_EQ(seq_->stats().overflows, 1u);
  EXPECT_EQ(seq_->stats().lost, 8u);  // 2..9
  answer("e1", 13, {2, 3, 4});        // the read comes back late: nothing older is delivered
  EXPECT_EQ(delivered(), "");
}

}  // namespace
}  // namespace herald::redis
