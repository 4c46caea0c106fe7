// Server side of a "unary call as a stream message" method (RouteStream, ForwardStream): a
// bidirectional stream on which every request gets exactly one response, in order, computed by
// the same handler as the unary method. A handler error ends the stream with that status; the
// client opens a new stream for its next message.
//
// Graceful shutdown: Close() ends every open stream once the message it is computing (if any) has
// been answered, and refuses new ones, so that grpc::Server::Shutdown does not wait out its grace
// period on streams that would otherwise stay open for the life of the client.
#ifndef MOE_SERVICES_COMMON_MESSAGE_STREAMS_H_
#define MOE_SERVICES_COMMON_MESSAGE_STREAMS_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <utility>

#include "absl/base/config.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "services/common/frames.h"
#include "services/common/status.h"

#ifdef ABSL_HAVE_THREAD_SANITIZER
#include <sanitizer/tsan_interface.h>
#endif

namespace moe {

template <typename Req, typename Resp>
class MessageStreams {
 public:
  // The unary method's own handler; its absl::Status becomes the stream's status on error.
  using Handler = std::function<absl::Status(const Req&, Resp*)>;

  explicit MessageStreams(Handler handler) : handler_(std::move(handler)) {}
  // REQUIRES: the server has shut down (every stream is done). Taking the lock orders the
  // destruction after the last OnDone, which leaves open_ under it: gRPC's shutdown guarantees
  // that order, but through its own atomics, which ThreadSanitizer does not see.
  ~MessageStreams() { absl::MutexLock lock(&mu_); }
  MessageStreams(const MessageStreams&) = delete;
  MessageStreams& operator=(const MessageStreams&) = delete;

  // For the service's streaming method: serves one stream.
  grpc::ServerBidiReactor<Req, Resp>* Open() {
    auto* r = new Reactor(this);
    r->Begin();
    return r;
  }

  // Ends open streams after their current message and refuses new streams (UNAVAILABLE).
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    for (Reactor* r : open_) r->CloseLocked();
  }

  // The same handler for frames (frames.h): parses the request, serializes the answer.
  FrameServer::Handler frame_handler() const {
    return [this](absl::string_view bytes, std::string* out) {
      Req req;
      if (!req.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return absl::InvalidArgumentError(absl::StrCat("frame: not a valid ", req.GetTypeName()));
      }
      Resp resp;
      absl::Status s = handler_(req, &resp);
      if (s.ok()) resp.SerializeToString(out);
      return s;
    };
  }

  int open_streams() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(open_.size());
  }

 private:
  // Each state change happens under the owner's mutex; the handler runs outside it.
  class Reactor final : public grpc::ServerBidiReactor<Req, Resp> {
   public:
    explicit Reactor(MessageStreams* owner) : owner_(owner) {}

    void Begin() {
      Handoff();
      absl::MutexLock lock(&owner_->mu_);
      if (owner_->closed_) {
        FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
        return;
      }
      owner_->open_.insert(this);
      this->StartRead(&request_);
    }

    void OnReadDone(bool ok) override {
      Handoff();
      {
        absl::MutexLock lock(&owner_->mu_);
        if (finished_) return;  // closed while idle
        if (!ok) {              // the client is done (or gone)
          FinishLocked(grpc::Status::OK);
          return;
        }
        busy_ = true;
      }
      response_.Clear();
      const grpc::Status status = ToGrpcStatus(owner_->handler_(request_, &response_));
      absl::MutexLock lock(&owner_->mu_);
      if (!status.ok()) {
        FinishLocked(status);
        return;
      }
      this->StartWrite(&response_);
    }

    void OnWriteDone(bool ok) override {
      Handoff();
      absl::MutexLock lock(&owner_->mu_);
      busy_ = false;
      if (!ok) {
        FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream broken"));
        return;
      }
      if (owner_->closed_) {
        FinishLocked(grpc::Status::OK);
        return;
      }
      this->StartRead(&request_);
    }

    void OnDone() override {
      Handoff();
      {
        absl::MutexLock lock(&owner_->mu_);
        owner_->open_.erase(this);
      }
      delete this;
    }

    // Called by Close(): an idle stream (waiting for its next request) ends now; a busy one ends
    // after its response is written (OnWriteDone sees closed_).
    void CloseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(owner_->mu_) {
      if (!busy_) FinishLocked(grpc::Status::OK);
    }

   private:
    // gRPC runs each callback after the call that started it, possibly on another of its
    // threads, but orders the two through its own atomics, which ThreadSanitizer does not see:
    // the first callback's read of owner_ would look unordered after the constructor. Each
    // callback (and Begin) acquires what the ones before released.
    void Handoff() {
#ifdef ABSL_HAVE_THREAD_SANITIZER
      __tsan_acquire(this);
      __tsan_release(this);
#endif
    }

    void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(owner_->mu_) {
      if (finished_) return;
      finished_ = true;
      this->Finish(status);
    }

    MessageStreams* const owner_;
    Req request_;
    Resp response_;
    bool busy_ = false;      // guarded by owner_->mu_
    bool finished_ = false;  // guarded by owner_->mu_
  };

  const Handler handler_;
  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<Reactor*> open_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_MESSAGE_STREAMS_H_
