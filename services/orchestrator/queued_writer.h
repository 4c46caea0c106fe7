// A server-streaming reactor that writes queued messages one at a time, for streams whose
// messages come from other threads (the engine's, the event hub's). Enqueue and Close may be
// called from any thread; neither blocks. The queue itself is unbounded: producers bound what
// they enqueue (Generate: one message per token of one request; WatchRouting: one batch in
// flight, see watch_reactor.h).
//
// Lifetime: held by shared_ptr. Retain() gives the stream its own reference, which gRPC's OnDone
// drops; producers hold theirs until they are done, so a late Enqueue is safe (and ignored).
#ifndef MOE_SERVICES_ORCHESTRATOR_QUEUED_WRITER_H_
#define MOE_SERVICES_ORCHESTRATOR_QUEUED_WRITER_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace moe {

template <typename Msg>
class QueuedWriter : public grpc::ServerWriteReactor<Msg>,
                     public std::enable_shared_from_this<QueuedWriter<Msg>> {
 public:
  void Enqueue(Msg m) {
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      queue_.push_back(std::move(m));
      if (writing_) return;
      writing_ = true;
      current_ = std::move(queue_.front());
      queue_.pop_front();
    }
    this->StartWrite(&current_);
  }

  // Finishes after the queued messages are written.
  void Close(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      finishing_ = true;
      final_ = status;
      if (writing_ || !queue_.empty()) return;
      finished_ = true;
    }
    this->Finish(status);
  }

  void OnWriteDone(bool ok) override {
    bool write = false, finish = false;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        queue_.clear();
        if (!finished_) {
          if (!finishing_) final_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream broken");
          finishing_ = finished_ = finish = true;
        }
      } else if (!queue_.empty()) {
        current_ = std::move(queue_.front());
        queue_.pop_front();
        writing_ = write = true;
      } else if (finishing_ && !finished_) {
        finished_ = finish = true;
      }
    }
    if (write) this->StartWrite(&current_);
    if (finish) this->Finish(final_);
  }

  void OnDone() override {
    Released();
    self_.reset();  // may delete this
  }

  // Call right after creation, before returning the reactor to gRPC.
  void Retain() { self_ = this->shared_from_this(); }

 protected:
  // Called once gRPC is done with the stream, before its own reference is dropped.
  virtual void Released() {}

  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;

 private:
  std::deque<Msg> queue_ ABSL_GUARDED_BY(mu_);
  Msg current_;  // the message being written; touched only by the one writer at a time
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_;
  std::shared_ptr<QueuedWriter<Msg>> self_;
};

}  // namespace moe

#endif  // MOE_SERVICES_ORCHESTRATOR_QUEUED_WRITER_H_
