// Work handed to one event loop from other threads, run in batches: one loop handler per batch
// instead of one per task. Whatever arrives while the loop is busy runs together in its next
// turn, which is what lets a burst of publications leave in one write per connection, and
// costs one wake-up of the loop per batch. Order is that of post() calls: a task posted later
// either joins a batch that has not started yet or schedules the next one.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace herald {

// Work posted to a worker from other threads, run in order as one batch per turn.
class mailbox {
 public:
  // `on_error` sees what a task threw (a bug); the rest of the batch still runs.
  mailbox(boost::asio::io_context& ioc, std::function<void(const std::exception&)> on_error)
      : ioc_(ioc), on_error_(std::move(on_error)) {}
  mailbox(const mailbox&) = delete;
  mailbox& operator=(const mailbox&) = delete;

  // Thread-safe.
  void post(std::function<void()> fn) {
    bool schedule = false;
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(fn));
      schedule = !posted_;
      posted_ = true;
    }
    if (schedule) boost::asio::post(ioc_, [this] { run(); });
  }

 private:
  void run() {
    {
      std::lock_guard lock(mutex_);
      batch_.swap(tasks_);
      posted_ = false;
    }
    for (auto& fn : batch_) {
      try {
        fn();
      } catch (const std::exception& e) {
        on_error_(e);
      }
    }
    batch_.clear();  // capacity kept: the next batch of this size allocates nothing...
    // ... unless a storm made it large: then give it back rather than hold it for good.
    if (batch_.capacity() > max_kept_capacity) std::vector<std::function<void()>>().swap(batch_);
  }

  static constexpr std::size_t max_kept_capacity = 1024;

  boost::asio::io_context& ioc_;
  std::function<void(const std::exception&)> on_error_;
  std::mutex mutex_;
  std::vector<std::function<void()>> tasks_;  // guarded by mutex_
  bool posted_ = false;                       // guarded by mutex_
  std::vector<std::function<void()>> batch_;  // the loop's thread: the batch being run
};

}  // namespace herald
