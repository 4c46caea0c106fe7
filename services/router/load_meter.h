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

  // One Route call's work: per key, and per pool (pool index, tokens).
  void Add(int layer, absl::Span<const double> per_key,
           absl::Span<const std::pair<int, double>> per_pool);
  std::vector<double> KeyLoads(int layer) const;
  // Per pool index, n_pools long (pools with nothing measured read 0).
  std::vector<double> PoolLoads(int layer, int n_pools) const;

 private:
  const int n_keys_;
  const Clock clock_;
  mutable absl::Mutex mu_;
  mutable std::vector<DecayingCounters> keys_ ABSL_GUARDED_BY(mu_);   // per layer
  mutable std::vector<DecayingCounters> pools_ ABSL_GUARDED_BY(mu_);  // per layer
};

}  // namespace moe

#endif  // MOE_SERVICES_ROUTER_LOAD_METER_H_
