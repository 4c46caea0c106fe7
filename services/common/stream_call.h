// Client side of a "unary call as a stream message" method (see message_streams.h): one
// long-lived bidirectional stream to a peer, on which each Send is answered by one response.
// Several StreamCalls share one completion queue, which their owner's thread drives with
// WaitForStreamCalls: a request to every pool goes out at once, and one thread collects the answers
// without a hop through gRPC's threads.
//
// A stream opens on first use and after it breaks. Messages get their own deadline (the stream
// has none): a peer that does not answer in time has its stream cancelled, and the message fails
// with DEADLINE_EXCEEDED. A stream that was already open and turns out to be gone (the peer
// restarted, or ended it on shutdown) before answering is reopened once and the message resent,
// so an idle peer's restart costs no failure.
//
// Not thread-safe: one thread uses a StreamCall and its queue at a time.
#ifndef MOE_SERVICES_COMMON_STREAM_CALL_H_
#define MOE_SERVICES_COMMON_STREAM_CALL_H_

#include <grpcpp/grpcpp.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace moe {

// What WaitForStreamCalls dispatches on: each operation's tag points at one of these.
class StreamOpTarget {
 public:
  virtual ~StreamOpTarget() = default;
  virtual void OnEvent(int op, bool ok) = 0;
  virtual bool Pending() const = 0;  // an answer or a teardown is outstanding
  virtual void Cancel() = 0;         // give up on the outstanding answer
  // Broke before answering on a stream that was already open: resends once and says so.
  virtual bool WantsResend() = 0;
  virtual void BeginClose() = 0;  // ends the stream, if open
  // A call on a frame connection (frame_call.h) is waited for by polling its socket, not the
  // queue: the descriptor while its answer is outstanding, else -1; OnReadable when it polls
  // readable.
  virtual int poll_fd() const { return -1; }
  virtual void OnReadable() {}
};

// One message and its answer to a peer, over a gRPC stream (StreamCall) or a frame connection
// (FrameCall); what the orchestrator's links hold.
template <typename Req, typename Resp>
class MessageCall : public StreamOpTarget {
 public:
  // Sends `req`; its answer lands in `*resp` once WaitForStreamCalls returns. `req` and `resp`
  // must outlive the wait.
  virtual void Send(const Req* req, Resp* resp) = 0;
  // After the wait: OK with the answer in `*resp`, or why there is none.
  virtual const grpc::Status& status() const = 0;
  // When the answer (or, failing one, the wait's end) arrived.
  virtual absl::Time answered_at() const = 0;
};

struct StreamOpTag {
  StreamOpTarget* target;
  int op;
};

template <typename Req, typename Resp>
class StreamCall final : public MessageCall<Req, Resp> {
 public:
  using Stream = grpc::ClientAsyncReaderWriter<Req, Resp>;
  // Starts a stream on `cq` (a stub's PrepareAsyncXStream).
  using Opener =
      std::function<std::unique_ptr<Stream>(grpc::ClientContext*, grpc::CompletionQueue*)>;

  StreamCall(Opener opener, grpc::CompletionQueue* cq) : opener_(std::move(opener)), cq_(cq) {}
  // REQUIRES: !Pending() (the owner drains and cancels before destroying).
  ~StreamCall() override = default;

  void Send(const Req* req, Resp* resp) override {
    req_ = req;
    resp_ = resp;
    answered_ = false;
    error_ = grpc::Status::OK;
    resent_ = false;
    StartMessage();
  }

  // Ends the stream (if open); the owner then waits for it to finish before destroying it.
  void BeginClose() override {
    closing_ = true;
    if (stream_ == nullptr || finishing_) return;
    context_->TryCancel();
    cancel_requested_ = true;
    if (outstanding_ > 0) return;  // the failing operations start the teardown
    broken_ = true;
    finishing_ = true;
    ++outstanding_;
    stream_->Finish(&finish_status_, &tags_[kFinish]);
  }

  const grpc::Status& status() const override { return error_; }
  bool open() const { return stream_ != nullptr; }
  absl::Time answered_at() const override { return answered_ ? answered_at_ : absl::Now(); }

  // StreamOpTarget.
  void OnEvent(int op, bool ok) override {
    --outstanding_;
    switch (op) {
      case kWrite:
        if (!ok) broken_ = true;
        break;
      case kRead:
        if (ok) {
          answered_ = true;
          answered_at_ = absl::Now();
        } else {
          broken_ = true;
        }
        break;
      case kFinish:
        // The stream is over: keep the reason if the message got no answer.
        if (!answered_ && error_.ok()) {
          error_ = cancelled_for_deadline_ ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                                          "no answer within the message deadline")
                   : finish_status_.ok()
                       ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream ended by the server")
                       : finish_status_;
        }
        stream_.reset();
        context_.reset();
        finishing_ = false;
        return;
    }
    // A cancelled stream is done even when its operations raced the cancellation and succeeded:
    // reusing it would fail the next message with CANCELLED.
    if (cancel_requested_) broken_ = true;
    if (broken_ && outstanding_ == 0 && !finishing_) {
      finishing_ = true;
      ++outstanding_;
      stream_->Finish(&finish_status_, &tags_[kFinish]);
    }
  }

  bool Pending() const override { return outstanding_ > 0; }

  void Cancel() override {
    if (context_ != nullptr && outstanding_ > 0 && !answered_) {
      cancelled_for_deadline_ = true;
      cancel_requested_ = true;
      context_->TryCancel();
    }
  }

  bool WantsResend() override {
    // Only a transport-level end (a restarted peer, a peer that closed its streams on shutdown):
    // an error status from the handler would just come back again. A handler's own UNAVAILABLE
    // looks the same and is asked once more, which is harmless: Route and Forward have no effect
    // beyond their answer (the router's load estimate aside).
    if (answered_ || resent_ || !reused_ || cancelled_for_deadline_ || closing_ ||
        error_.error_code() != grpc::StatusCode::UNAVAILABLE) {
      return false;
    }
    resent_ = true;
    error_ = grpc::Status::OK;
    StartMessage();
    return true;
  }

 private:
  enum Op { kWrite = 0, kRead = 1, kFinish = 2 };

  void StartMessage() {
    cancelled_for_deadline_ = false;
    reused_ = stream_ != nullptr;
    if (stream_ == nullptr) {
      context_ = std::make_unique<grpc::ClientContext>();
      // The call's headers go out with its first message: one write, and no start operation
      // to wait for (the stream's write slot is free for the message at once).
      context_->set_initial_metadata_corked(true);
      broken_ = false;
      cancel_requested_ = false;
      stream_ = opener_(context_.get(), cq_);
      stream_->StartCall(nullptr);
    }
    outstanding_ += 2;
    stream_->Write(*req_, &tags_[kWrite]);
    stream_->Read(resp_, &tags_[kRead]);
  }

  const Opener opener_;
  grpc::CompletionQueue* const cq_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<Stream> stream_;
  StreamOpTag tags_[3] = {{this, kWrite}, {this, kRead}, {this, kFinish}};
  const Req* req_ = nullptr;
  Resp* resp_ = nullptr;
  int outstanding_ = 0;
  bool broken_ = false;
  bool finishing_ = false;
  bool answered_ = false;
  bool reused_ = false;
  bool resent_ = false;
  bool cancelled_for_deadline_ = false;
  bool cancel_requested_ = false;  // TryCancel was called on this stream's context
  bool closing_ = false;
  grpc::Status finish_status_;
  grpc::Status error_;
  absl::Time answered_at_;
};

// Drives `cq` and polls the frame calls' sockets until every call in `calls` has its answer or its
// error. Calls still unanswered at `deadline` are cancelled (their status becomes
// DEADLINE_EXCEEDED); the wait then continues only until gRPC has released them, which
// cancellation makes prompt. Frame calls are waited for first: a mix of the two (a peer that
// offers no frames beside others that do) costs the longer of the two waits, as either alone.
inline void WaitForStreamCalls(grpc::CompletionQueue& cq, const std::vector<StreamOpTarget*>& calls,
                               absl::Time deadline) {
  bool cancelled = false;
  std::vector<pollfd> fds;
  std::vector<StreamOpTarget*> polled;
  for (;;) {
    bool queue_pending = false;
    fds.clear();
    polled.clear();
    for (StreamOpTarget* c : calls) {
      if (!c->Pending()) continue;
      if (const int fd = c->poll_fd(); fd >= 0) {
        fds.push_back({fd, POLLIN, 0});
        polled.push_back(c);
      } else {
        queue_pending = true;
      }
    }
    if (fds.empty() && !queue_pending) {
      bool resent = false;
      for (StreamOpTarget* c : calls) resent |= c->WantsResend();
      if (!resent) return;
      continue;
    }
    if (!fds.empty()) {
      // Answers already in are taken even past the deadline (as the queue hands out events it
      // holds before it reports a timeout); the calls still waiting then are cancelled.
      const absl::Duration left = std::max(deadline - absl::Now(), absl::ZeroDuration());
      const timespec until = absl::ToTimespec(std::min(left, absl::Hours(1)));
      const int ready = ::ppoll(fds.data(), fds.size(), &until, nullptr);
      if (ready > 0) {
        for (size_t i = 0; i < fds.size(); ++i) {
          if (fds[i].revents != 0) polled[i]->OnReadable();
        }
      } else if (ready == 0 && left == absl::ZeroDuration()) {
        for (StreamOpTarget* c : polled) c->Cancel();  // a frame call's cancel is immediate
      }
      continue;
    }
    void* tag = nullptr;
    bool ok = false;
    const std::chrono::system_clock::time_point until =
        cancelled ? std::chrono::system_clock::now() + std::chrono::hours(1)
                  : absl::ToChronoTime(deadline);
    switch (cq.AsyncNext(&tag, &ok, until)) {
      case grpc::CompletionQueue::GOT_EVENT: {
        auto* t = static_cast<StreamOpTag*>(tag);
        t->target->OnEvent(t->op, ok);
        break;
      }
      case grpc::CompletionQueue::TIMEOUT:
        for (StreamOpTarget* c : calls) c->Cancel();
        cancelled = true;
        break;
      case grpc::CompletionQueue::SHUTDOWN:
        return;
    }
  }
}

// Ends some of the streams on `cq` and waits until gRPC has released them, so that they can be
// destroyed; the queue and its other streams stay usable (a pool that left the placement).
inline void EndStreamCalls(grpc::CompletionQueue& cq, const std::vector<StreamOpTarget*>& calls) {
  for (StreamOpTarget* c : calls) c->BeginClose();
  WaitForStreamCalls(cq, calls, absl::InfiniteFuture());
}

// Ends every call's stream, waits until gRPC has released them, then shuts `cq` down and drains
// it: what the owner of a queue and its calls does before destroying them.
inline void CloseStreamCalls(grpc::CompletionQueue& cq, const std::vector<StreamOpTarget*>& calls) {
  EndStreamCalls(cq, calls);
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
}

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_STREAM_CALL_H_
