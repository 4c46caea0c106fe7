// One background thread that runs tasks in the order they were posted: for work a gRPC handler
// must not do on a reactor thread (loading weights, waiting for in-flight calls), finishing its
// reactor from the worker instead.
//
// Thread-safe. The destructor runs the tasks already posted, then joins; Post after that point
// is a bug.
#ifndef MOE_SERVICES_COMMON_SERIAL_WORKER_H_
#define MOE_SERVICES_COMMON_SERIAL_WORKER_H_

#include <deque>
#include <functional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace moe {

class SerialWorker {
 public:
  SerialWorker() : thread_([this] { Run(); }) {}
  ~SerialWorker() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
  }
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;

  void Post(std::function<void()> task) {
    absl::MutexLock lock(&mu_);
    tasks_.push_back(std::move(task));
  }

 private:
  void Run() {
    for (;;) {
      std::function<void()> task;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](SerialWorker* w)
                 ABSL_NO_THREAD_SAFETY_ANALYSIS { return w->stopping_ || !w->tasks_.empty(); },
            this));
        if (tasks_.empty()) return;  // stopping, and nothing left
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts after the members it uses
};

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_SERIAL_WORKER_H_
