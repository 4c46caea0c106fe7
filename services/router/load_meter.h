// The router's windowed measure of load: (token, slot) pairs routed to each expert key and
// computed by each pool, per layer, decaying by half every `half_life`. What the rebalancer
// plans from and what GetPlacement reports. Thread-safe.
#ifndef MOE_SERVICES_ROUTER_LOAD_METER_H_
#define MOE_SERVICES_ROUTER_LOAD_METER_H_

#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "services/router/decaying_counters.h"

namespace moe {

class LoadMeter {
 public:
  LoadMeter(int n_layers, int n_keys, absl::Duration half_life, Clock clock = RealClock());

  // Tokens one expert key got from one Route call, and the pool that computes them.
  struct Work {
    int key;
    int pool;
    double tokens;
  };
  void Add(int layer, absl::Span<const Work> work);
  std::vector<double> KeyLoads(int layer) const;
  // Per pool index, n_pools long (pools with nothing measured read 0).
  std::vector<double> PoolLoads(int layer, int n_pools) const;
  // One key's tokens per pool index, n_pools long: how its replicas share it.
  std::vector<double> KeyPoolLoads(int layer, int key, int n_pools) const;

 private:
  const int n_keys_;
  const Clock clock_;
  mutable absl::Mutex mu_;
  // [layer][key] -> tokens per pool. Per-key and per-pool loads are its sums, so a Route updates
  // one counter per (key, pool) it assigned.
  mutable std::vector<std::vector<DecayingCounters>> key_pools_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moe

#endif  // MOE_SERVICES_ROUTER_LOAD_METER_H_
