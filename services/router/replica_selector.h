// Which replica computes an expert's rows: of the healthy pools hosting the expert, the one with
// the least recent load. A pool's load is the tokens assigned to it, decaying by half every
// `half_life`, so it tracks the work each pool has been given lately (its outstanding work, for
// a system that keeps up) rather than since start. Ties go to the first host in the order given,
// so the choice is deterministic for a given sequence of calls and clock readings.
//
// Thread-safe: one mutex guards every pool's load and health, so a choice and the load it adds
// are one step; concurrent Route handlers never lose each other's updates.
#ifndef MOE_SERVICES_ROUTER_REPLICA_SELECTOR_H_
#define MOE_SERVICES_ROUTER_REPLICA_SELECTOR_H_

#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "services/router/decaying_counters.h"

namespace moe {

class ReplicaSelector {
 public:
  using Clock = moe::Clock;

  // Pools are numbered [0, n_pools) and start healthy with no load. `clock` is for tests.
  explicit ReplicaSelector(int n_pools, absl::Duration half_life = absl::Seconds(1),
                           Clock clock = RealClock());

  // Pools that join later: grows to n_pools (new ones healthy, no load).
  void Resize(int n_pools);

  // Picks the healthy pool in `hosts` with the least load, adds `tokens` to its load and returns
  // it; -1 when none of `hosts` is healthy (nothing is added then).
  // REQUIRES: every entry of hosts is in [0, n_pools).
  int Pick(absl::Span<const int> hosts, double tokens);

  // Returns true if this changed the pool's health.
  bool SetHealthy(int pool, bool healthy);
  bool healthy(int pool) const;
  // The pool's load now (decayed to the clock's present).
  double load(int pool) const;

 private:
  const Clock clock_;
  mutable absl::Mutex mu_;
  mutable DecayingCounters load_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> healthy_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moe

#endif  // MOE_SERVICES_ROUTER_REPLICA_SELECTOR_H_
