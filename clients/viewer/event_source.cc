#include "clients/viewer/event_source.h"

#include <algorithm>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "clients/viewer/signals.h"

namespace moe::viewer {
namespace {

using moe::v1::RoutingEvent;
using moe::v1::WatchRoutingRequest;
using moe::v1::WatchRoutingResponse;

// Messages (each a batch of events) buffered here: enough to ride out a burst while the consumer
// writes to a socket or a terminal; beyond it the streams stop reading and the orchestrator's own
// bounded queue takes over.
constexpr size_t kQueueCapacity = 64;

class WatchSource : public EventSource {
 public:
  WatchSource(moe::v1::Orchestrator::Stub* stub, const WatchOptions& options, absl::Time deadline)
      : mux_(kQueueCapacity) {
    WatchRoutingRequest request;
    request.set_request_id(options.request_id);
    for (int layer : options.layers) request.add_layers(layer);
    request.set_include_probs(options.include_probs);
    auto start = [stub](grpc::ClientContext* context, const WatchRoutingRequest* r,
                        grpc::ClientReadReactor<WatchRoutingResponse>* reactor) {
      stub->async()->WatchRouting(context, r, reactor);
    };
    WatchRoutingRequest tokens = request;
    tokens.set_sample_rate(static_cast<float>(options.sample_rate));
    mux_.Add(std::move(tokens), deadline, start);
    dropped_.push_back(0);
    if (options.snapshot_interval_ms > 0) {
      WatchRoutingRequest load = request;
      load.set_snapshot_interval_ms(options.snapshot_interval_ms);
      mux_.Add(std::move(load), deadline, start);
      dropped_.push_back(0);
    }
  }

  PopResult Next(absl::Duration timeout, RoutingEvent* event) override {
    // Messages carry batches of events; hand them out one at a time.
    while (next_ >= batch_.events_size()) {
      int index = 0;
      const PopResult r = mux_.Pop(timeout, &batch_, &index);
      next_ = 0;
      if (r != PopResult::kMessage) {
        batch_.Clear();
        return r;
      }
      dropped_[index] = std::max(dropped_[index], batch_.dropped());
    }
    *event = std::move(*batch_.mutable_events(next_++));
    uint64_t total = 0;
    for (uint64_t d : dropped_) total += d;
    event->set_dropped(total);
    return PopResult::kMessage;
  }

  absl::Status status() const override { return mux_.status(); }
  void Cancel() override { mux_.Cancel(); }

 private:
  StreamMux<WatchRoutingRequest, WatchRoutingResponse> mux_;
  std::vector<uint64_t> dropped_;  // latest cumulative count of each subscription
  WatchRoutingResponse batch_;     // the message being handed out
  int next_ = 0;                   // its next event
};

class ReplaySource : public EventSource {
 public:
  ReplaySource(std::shared_ptr<const std::vector<RoutingEvent>> events, double speed, bool loop,
               absl::Duration max_gap)
      : events_(std::move(events)), speed_(speed), loop_(loop), max_gap_(max_gap) {}

  PopResult Next(absl::Duration timeout, RoutingEvent* event) override {
    const absl::Time give_up = absl::Now() + timeout;
    absl::MutexLock lock(&mu_);
    if (cancelled_ || events_->empty()) return PopResult::kEnd;
    if (next_ >= events_->size()) {
      if (!loop_) return PopResult::kEnd;
      next_ = 0;
    }
    if (!has_due_) {
      // Due times follow the previous due time, not the clock, so the replay keeps the recorded
      // pace even when the consumer is late for a while.
      if (last_due_ == absl::InfinitePast()) {
        due_ = absl::Now();
      } else if (next_ == 0) {
        due_ = last_due_ + max_gap_;  // a loop starts over after a pause
      } else if (speed_ > 0) {
        const int64_t gap_us =
            (*events_)[next_].time_unix_micros() - (*events_)[next_ - 1].time_unix_micros();
        // Two merged subscriptions can arrive slightly out of time order: never wait for those.
        due_ = last_due_ +
               std::min(max_gap_, absl::Microseconds(std::max<int64_t>(0, gap_us)) / speed_);
      } else {
        due_ = last_due_;
      }
      has_due_ = true;
    }
    if (speed_ > 0) {
      mu_.AwaitWithDeadline(absl::Condition(&cancelled_), std::min(due_, give_up));
      if (cancelled_) return PopResult::kEnd;
      if (absl::Now() < due_) return PopResult::kTimeout;
    }
    *event = (*events_)[next_++];
    last_due_ = due_;
    has_due_ = false;
    return PopResult::kMessage;
  }

  absl::Status status() const override { return absl::OkStatus(); }

  void Cancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }

 private:
  std::shared_ptr<const std::vector<RoutingEvent>> events_;
  const double speed_;
  const bool loop_;
  const absl::Duration max_gap_;
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  bool has_due_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time due_ ABSL_GUARDED_BY(mu_);  // when events_[next_] is due, once has_due_
  absl::Time last_due_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace

std::unique_ptr<EventSource> WatchCluster(moe::v1::Orchestrator::Stub* stub,
                                          const WatchOptions& options, absl::Time deadline) {
  return std::make_unique<WatchSource>(stub, options, deadline);
}

std::unique_ptr<EventSource> ReplayEvents(std::shared_ptr<const std::vector<RoutingEvent>> events,
                                          double speed, bool loop, absl::Duration max_gap) {
  return std::make_unique<ReplaySource>(std::move(events), speed, loop, max_gap);
}

absl::StatusOr<bool> PumpEvents(EventSource& source, absl::Time deadline,
                                const std::function<bool()>& stop,
                                const std::function<absl::Status(absl::Time now)>& tick,
                                const std::function<absl::Status(const RoutingEvent&)>& on_event) {
  constexpr absl::Duration kPoll = absl::Milliseconds(100);
  for (;;) {
    if (WaitStopSignal(absl::ZeroDuration()) != 0 || stop()) return false;
    const absl::Time now = absl::Now();
    if (now >= deadline) return false;
    if (absl::Status s = tick(now); !s.ok()) return s;
    RoutingEvent event;
    const PopResult r = source.Next(std::min(kPoll, deadline - now), &event);
    if (r == PopResult::kEnd) return true;
    if (r == PopResult::kMessage) {
      if (absl::Status s = on_event(event); !s.ok()) return s;
    }
  }
}

}  // namespace moe::viewer
