// Fans routing events out to WatchRouting subscribers without slowing generation: each event is
// built and serialized once, and its bytes are shared by every subscriber's bounded queue (a
// subscriber's message is those bytes concatenated, as protobuf's wire format allows for a
// repeated field, so nothing is re-serialized per subscriber); on overflow the oldest
// events are dropped and counted. Publishing never touches gRPC: a delivery thread wakes the
// subscribers' writers kLinger after their queue turns non-empty, and each
// writer sends all that is queued as one message. Also keeps per-(layer, expert) token counts for
// load snapshots. Thread-safe.
#ifndef MOE_SERVICES_ORCHESTRATOR_EVENT_HUB_H_
#define MOE_SERVICES_ORCHESTRATOR_EVENT_HUB_H_

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "models/config.h"
#include "moe/v1/events.pb.h"

namespace moe {

class EventHub {
 public:
  // One subscriber's queue. The writer side (a WatchRouting reactor) pops; the hub pushes.
  class Subscriber {
   public:
    // Moves up to `max_events` queued events, oldest first, into `*wire` (replaced): a serialized
    // moe.v1.WatchRoutingResponse carrying them and the drops so far. False when none was queued.
    bool PopBatch(size_t max_events, std::string* wire);
    uint64_t dropped() const;

   private:
    friend class EventHub;
    moe::v1::WatchRoutingRequest filter_;
    std::set<int> layers_;
    size_t capacity_ = 4096;
    std::function<void()> wake_;
    mutable absl::Mutex mu_;
    std::deque<std::shared_ptr<const std::string>> queue_ ABSL_GUARDED_BY(mu_);  // serialized
    uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
    // Snapshot mode: counts at the last snapshot, and when the next is due.
    std::vector<int64_t> last_counts_;
    absl::Time next_snapshot_;
    absl::Time last_snapshot_;
    int64_t last_tokens_ = 0;
  };

  // At most `max_subscribers` WatchRouting streams at a time: with each queue bounded, so is the
  // memory the hub holds.
  EventHub(const ModelConfig& config, prometheus::Registry& registry, int max_subscribers = 64);
  ~EventHub();

  // How long the delivery thread lets events gather before it wakes a subscriber's writer.
  static constexpr absl::Duration kLinger = absl::Milliseconds(10);

  // Validates the request (INVALID_ARGUMENT names the field); RESOURCE_EXHAUSTED when
  // `max_subscribers` streams are open already. `wake` is called from the hub's
  // delivery thread, without hub locks held, about kLinger after the queue becomes non-empty.
  absl::StatusOr<std::shared_ptr<Subscriber>> Subscribe(const moe::v1::WatchRoutingRequest& req,
                                                        std::function<void()> wake);
  void Unsubscribe(const std::shared_ptr<Subscriber>& sub);
  bool has_token_subscribers() const { return token_subscribers_.load() > 0; }

  // Counts every token's routing for snapshots; cheap. ids: flat micro ids, per layer.
  void CountRouting(int layer, const std::vector<int32_t>& ids);
  void CountGeneratedToken() { tokens_.fetch_add(1); }
  // Delivers to every matching subscriber. `make(include_probs)` builds the event lazily.
  void PublishToken(const std::string& request_id, int position, int layer,
                    const std::function<moe::v1::RoutingEvent(bool include_probs)>& make);
  void PublishLifecycle(const std::string& request_id, const moe::v1::RoutingEvent& event);

 private:
  void Push(const std::shared_ptr<Subscriber>& sub, std::shared_ptr<const std::string> event);
  void SnapshotLoop();
  void DeliveryLoop();

  const ModelConfig config_;
  const int max_subscribers_;
  std::vector<std::atomic<int64_t>> counts_;  // [layer * n_routed + id]
  std::atomic<int64_t> tokens_{0};
  std::atomic<int> token_subscribers_{0};
  mutable absl::Mutex mu_;
  std::vector<std::shared_ptr<Subscriber>> subs_ ABSL_GUARDED_BY(mu_);
  prometheus::Gauge* subscribers_gauge_;
  prometheus::Counter* dropped_counter_;
  absl::Mutex wake_mu_;
  std::vector<std::weak_ptr<Subscriber>> to_wake_ ABSL_GUARDED_BY(wake_mu_);
  bool stopping_ ABSL_GUARDED_BY(wake_mu_) = false;
  absl::Notification stop_;
  std::thread snapshot_thread_;
  std::thread delivery_thread_;
};

// Coefficient of variation and max/mean of per-base-expert counts (micro-experts summed).
void LoadBalance(const std::vector<int64_t>& micro_counts, int granularity, double* cv,
                 double* max_over_mean);

}  // namespace moe

#endif  // MOE_SERVICES_ORCHESTRATOR_EVENT_HUB_H_
