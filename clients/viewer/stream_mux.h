// Reads one or more server-streaming gRPC calls (callback API) into one bounded queue that a
// consumer thread pops with a timeout. A stream whose message finds the queue full stops reading
// until the consumer makes room, so a slow consumer (a browser on a slow link, a paused terminal)
// pushes back through gRPC flow control to the server, whose per-subscriber queue then drops and
// counts, instead of this process growing without bound.
//
// Thread-safety: Add and Pop from one consumer thread; Cancel from any thread. The destructor
// cancels the streams and waits for gRPC to finish with them, so it may block briefly.
#ifndef MOE_CLIENTS_VIEWER_STREAM_MUX_H_
#define MOE_CLIENTS_VIEWER_STREAM_MUX_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_callback.h>

#include <deque>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "services/common/deadline.h"
#include "services/common/status.h"

namespace moe::viewer {

enum class PopResult {
  kMessage,  // *out holds the next message
  kTimeout,  // nothing within the timeout; streams still open
  kEnd,      // every stream has finished and the queue is empty; see status()
};

template <typename Request, typename Response>
class StreamMux {
 public:
  // Issues the call: e.g. stub->async()->WatchRouting(context, request, reactor).
  using StartFn = std::function<void(grpc::ClientContext* context, const Request* request,
                                     grpc::ClientReadReactor<Response>* reactor)>;

  // REQUIRES: capacity >= 1.
  explicit StreamMux(size_t capacity) : capacity_(capacity) {}
  StreamMux(const StreamMux&) = delete;
  StreamMux& operator=(const StreamMux&) = delete;

  ~StreamMux() {
    Cancel();
    for (const std::unique_ptr<Stream>& s : streams_) s->done.WaitForNotification();
  }

  // Starts a stream with `request` and `deadline`; its messages are popped with its index (0 for
  // the first Add, then 1, ...). REQUIRES: called from the consumer thread.
  void Add(Request request, absl::Time deadline, const StartFn& start) {
    auto stream = std::make_unique<Stream>(this, static_cast<int>(streams_.size()));
    stream->request = std::move(request);
    if (deadline != absl::InfiniteFuture()) SetDeadline(stream->context, deadline);
    Stream* s = stream.get();
    {
      absl::MutexLock lock(&mu_);
      streams_.push_back(std::move(stream));
      ++open_;
      if (cancelled_) s->context.TryCancel();
    }
    start(&s->context, &s->request, s);
    s->Begin();
  }

  // Waits up to `timeout` for a message. On kMessage moves it to *out and, if `index` is not
  // null, sets *index to its stream's index.
  PopResult Pop(absl::Duration timeout, Response* out, int* index = nullptr) {
    std::vector<Stream*> resume;
    PopResult result;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(this, &StreamMux::ReadyLocked), timeout);
      if (!queue_.empty()) {
        *out = std::move(queue_.front().second);
        if (index != nullptr) *index = queue_.front().first;
        queue_.pop_front();
        result = PopResult::kMessage;
        TakePausedLocked(&resume);
      } else {
        result = open_ == 0 ? PopResult::kEnd : PopResult::kTimeout;
      }
    }
    // Outside the lock: a read may complete inline and call back into Push.
    for (Stream* s : resume) s->Resume();
    return result;
  }

  // Cancels every stream (TryCancel); Pop then drains what was queued and returns kEnd.
  void Cancel() {
    std::vector<Stream*> resume;
    std::vector<Stream*> all;
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return;
      cancelled_ = true;
      TakePausedLocked(&resume);
      for (const std::unique_ptr<Stream>& s : streams_) all.push_back(s.get());
    }
    for (Stream* s : all) s->context.TryCancel();
    // A paused stream has no read in flight; one more read fails at once and lets it finish.
    for (Stream* s : resume) s->Resume();
  }

  // After kEnd: the first error among the streams, ignoring the CANCELLED of our own Cancel.
  absl::Status status() const {
    absl::MutexLock lock(&mu_);
    return status_;
  }

  // Streams not finished yet.
  int open() const {
    absl::MutexLock lock(&mu_);
    return open_;
  }

 private:
  struct Stream : public grpc::ClientReadReactor<Response> {
    Stream(StreamMux* mux, int index) : mux(mux), index(index) {}

    void Begin() {
      // The hold keeps OnDone away while a paused stream has no read in flight; it is removed
      // when reading ends, so OnDone follows.
      this->AddHold();
      this->StartRead(&buffer);
      this->StartCall();
    }
    void Resume() { this->StartRead(&buffer); }

    void OnReadDone(bool ok) override {
      if (!ok) {
        this->RemoveHold();
        return;
      }
      if (mux->Push(index, &buffer)) this->StartRead(&buffer);
    }
    void OnDone(const grpc::Status& status) override {
      mux->Finished(status);
      done.Notify();  // last: the mux may be destroyed once this returns
    }

    StreamMux* const mux;
    const int index;
    Request request;
    grpc::ClientContext context;
    Response buffer;
    absl::Notification done;
  };

  bool ReadyLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || open_ == 0;
  }

  // Queues a message; returns whether its stream should keep reading.
  bool Push(int index, Response* message) {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return true;  // read on until the cancelled call fails
    queue_.emplace_back(index, std::move(*message));
    if (queue_.size() < capacity_) return true;
    paused_.push_back(index);
    return false;
  }

  void TakePausedLocked(std::vector<Stream*>* resume) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (int i : paused_) resume->push_back(streams_[i].get());
    paused_.clear();
  }

  void Finished(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    --open_;
    const bool ours = cancelled_ && status.error_code() == grpc::StatusCode::CANCELLED;
    if (!status.ok() && !ours && status_.ok()) status_ = FromGrpcStatus(status);
  }

  const size_t capacity_;
  mutable absl::Mutex mu_;
  // Only the consumer thread adds; reactors reach their own Stream, never the vector.
  std::vector<std::unique_ptr<Stream>> streams_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<int, Response>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<int> paused_ ABSL_GUARDED_BY(mu_);  // streams with no read in flight
  int open_ ABSL_GUARDED_BY(mu_) = 0;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_STREAM_MUX_H_
