#include "services/orchestrator/placement_watcher.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/common/deadline.h"

namespace moe {

PlacementWatcher::PlacementWatcher(moe::v1::Router::Stub* router, EventHub* hub,
                                   const Logger* logger)
    : router_(router), hub_(hub), logger_(logger), thread_([this] { Loop(); }) {}

PlacementWatcher::~PlacementWatcher() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void PlacementWatcher::OnEpoch(uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  if (epoch > seen_) seen_ = epoch;
}

void PlacementWatcher::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](PlacementWatcher* w)
               ABSL_NO_THREAD_SAFETY_ANALYSIS { return w->stop_ || w->seen_ > w->published_; },
          this));
      if (stop_) return;
    }
    moe::v1::RoutingEvent ev;
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(5));
    moe::v1::Placement* placement = ev.mutable_placement()->mutable_placement();
    const grpc::Status st = router_->GetPlacement(&ctx, moe::v1::GetPlacementRequest(), placement);
    if (!st.ok()) {
      logger_->Warn("placement_fetch_failed", {{"error", st.error_message()}});
      absl::MutexLock lock(&mu_);
      // Try again after a pause, or as soon as a newer epoch arrives.
      mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Seconds(1));
      continue;
    }
    ev.set_time_unix_micros(absl::ToUnixMicros(absl::Now()));
    hub_->PublishLifecycle("", ev);
    absl::MutexLock lock(&mu_);
    // A newer epoch seen during the fetch is fetched again next round.
    published_ = std::max(published_, placement->epoch());
  }
}

}  // namespace moe
