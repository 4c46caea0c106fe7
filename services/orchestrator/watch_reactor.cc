#include "services/orchestrator/watch_reactor.h"

#include <memory>
#include <string>

#include "moe/v1/orchestrator.grpc.pb.h"
#include "services/common/status.h"
#include "services/orchestrator/queued_writer.h"

namespace moe {
namespace {

// Keeps each WatchRouting message well under a megabyte even with full gate probabilities.
constexpr size_t kMaxEventsPerMessage = 512;

class WatchReactor : public QueuedWriter<grpc::ByteBuffer> {
 public:
  explicit WatchReactor(EventHub* hub) : hub_(hub) {}

  void Begin(const moe::v1::WatchRoutingRequest& req) {
    std::weak_ptr<QueuedWriter<grpc::ByteBuffer>> weak = shared_from_this();
    absl::StatusOr<std::shared_ptr<EventHub::Subscriber>> sub = hub_->Subscribe(req, [weak] {
      if (auto self = weak.lock()) static_cast<WatchReactor*>(self.get())->Drain();
    });
    if (!sub.ok()) {
      Close(ToGrpcStatus(sub.status()));
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      sub_ = *sub;
    }
    Drain();  // events published before sub_ was set had no one to wake
  }

  void OnWriteDone(bool ok) override {
    QueuedWriter<grpc::ByteBuffer>::OnWriteDone(ok);
    Drain();
  }
  void OnCancel() override { Close(grpc::Status::OK); }

 private:
  // Moves what the hub has queued into the stream as one message, one message in flight at a
  // time. Called by the hub's delivery thread and by gRPC after each write; one caller drains at
  // a time (a second one asks the first to go round again), so batches cannot overtake each
  // other.
  void Drain() {
    std::shared_ptr<EventHub::Subscriber> sub;
    {
      absl::MutexLock lock(&mu_);
      if (sub_ == nullptr) return;
      if (draining_) {
        again_ = true;
        return;
      }
      draining_ = true;
      sub = sub_;
    }
    for (;;) {
      bool idle;
      {
        absl::MutexLock lock(&mu_);
        again_ = false;
        idle = !writing_ && !finishing_;
      }
      auto wire = idle ? std::make_unique<std::string>() : nullptr;
      if (wire != nullptr && sub->PopBatch(kMaxEventsPerMessage, wire.get())) {
        // The slice takes the string over (no copy) and deletes it when gRPC is done with it.
        std::string* owned = wire.release();
        grpc::Slice slice(
            owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); },
            owned);
        Enqueue(grpc::ByteBuffer(&slice, 1));  // may run OnWriteDone -> Drain inline: again_
      }
      absl::MutexLock lock(&mu_);
      if (!again_) {
        draining_ = false;
        return;
      }
    }
  }

  void Released() override {
    std::shared_ptr<EventHub::Subscriber> sub;
    {
      absl::MutexLock lock(&mu_);
      sub = sub_;
    }
    if (sub != nullptr) hub_->Unsubscribe(sub);
  }

  EventHub* const hub_;
  std::shared_ptr<EventHub::Subscriber> sub_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool again_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* StartWatch(EventHub* hub, const grpc::ByteBuffer& raw) {
  auto reactor = std::make_shared<WatchReactor>(hub);
  reactor->Retain();
  moe::v1::WatchRoutingRequest req;
  grpc::ByteBuffer copy(raw);  // shares the slices
  if (grpc::Status s =
          grpc::SerializationTraits<moe::v1::WatchRoutingRequest>::Deserialize(&copy, &req);
      !s.ok()) {
    reactor->Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "request: not a moe.v1.WatchRoutingRequest"));
  } else {
    reactor->Begin(req);
  }
  return reactor.get();
}

}  // namespace moe
