// Puts the router's placement into the routing event stream whenever its epoch moves on, so that
// viewers follow rebalances, drains, joins and heals live. The executor reports each newer epoch
// it sees in a Route answer (OnEpoch, from engine threads: never blocks); a thread of its own
// fetches the placement (GetPlacement) and publishes it as a PlacementChanged event.
//
// Thread-safe. The destructor stops the thread.
#ifndef MOE_SERVICES_ORCHESTRATOR_PLACEMENT_WATCHER_H_
#define MOE_SERVICES_ORCHESTRATOR_PLACEMENT_WATCHER_H_

#include <cstdint>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "moe/v1/router.grpc.pb.h"
#include "services/common/log.h"
#include "services/orchestrator/event_hub.h"

namespace moe {

class PlacementWatcher {
 public:
  PlacementWatcher(moe::v1::Router::Stub* router, EventHub* hub, const Logger* logger);
  ~PlacementWatcher();
  PlacementWatcher(const PlacementWatcher&) = delete;
  PlacementWatcher& operator=(const PlacementWatcher&) = delete;

  void OnEpoch(uint64_t epoch);

 private:
  void Loop();

  moe::v1::Router::Stub* const router_;
  EventHub* const hub_;
  const Logger* const logger_;
  absl::Mutex mu_;
  uint64_t seen_ ABSL_GUARDED_BY(mu_) = 0;       // newest epoch reported
  uint64_t published_ ABSL_GUARDED_BY(mu_) = 0;  // newest epoch published
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts after the members it uses
};

}  // namespace moe

#endif  // MOE_SERVICES_ORCHESTRATOR_PLACEMENT_WATCHER_H_
