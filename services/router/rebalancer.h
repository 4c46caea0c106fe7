// The rebalancer's policy, as a pure function: from the measured load of each expert of a layer
// and where its replicas are, where they should be. EPLB-style (DeepSeek's expert-parallel load
// balancer), adapted to a running system that must not flap:
//
// 1. Replica counts. Every expert gets one replica; then, one at a time, the expert with the
//    highest load per replica gets another, as long as a pool has a free slot for it and the
//    predicted balancedness improves by more than `min_step` (no replicas that do not help).
// 2. Placement. Every expert first keeps its current hosts while their load stays within
//    `stickiness` of the ideal pool load (a move costs a load); the replicas left go, heaviest
//    per-replica load first, to the usable pool with the least load so far that has a free slot
//    and no replica of that expert yet.
// 3. Hysteresis. The plan is adopted only when the current placement is invalid (an expert
//    without a replica on a usable pool, or a replica on a pool being drained) or when it raises
//    the layer's balancedness by at least `min_gain`.
//
// Balancedness, as vLLM and SGLang define it: mean over usable pools of their load divided by the
// max (1.0 is perfect; 1.0 when there is no load). A replica's load is its expert's load divided
// by the expert's replica count (the router spreads an expert's tokens evenly over its replicas).
#ifndef MOE_SERVICES_ROUTER_REBALANCER_H_
#define MOE_SERVICES_ROUTER_REBALANCER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moe {

struct PlannerPool {
  bool usable = true;  // healthy and not draining: may host experts
  int slots = 0;       // experts per layer at most; 0 = any
};

struct PlannerLayer {
  std::vector<double> load;               // per expert key: windowed (token, slot) pairs
  std::vector<std::vector<int>> current;  // per expert key: pools hosting it now
};

struct PlannerOptions {
  double min_gain = 0.05;    // hysteresis: the least balancedness gain worth a change
  double min_step = 0.01;    // the least gain worth one more replica
  double stickiness = 0.05;  // a current host keeps an expert up to (1 + this) x the ideal load
};

struct LayerPlan {
  std::vector<std::vector<int>> hosts;  // per expert key: pools, sorted
  double before = 1;                    // balancedness of the current placement
  double after = 1;                     // of the plan (equal to before when not adopted)
  bool adopted = false;                 // hosts differs from current and should be applied
  std::string reason;                   // why adopted or not
};

// Mean over usable pools of `pool_loads` divided by the max; 1 when no usable pool has load.
double MeanOverMax(const std::vector<PlannerPool>& pools, const std::vector<double>& pool_loads);

// Balancedness of a placement under a load (see above).
double Balancedness(const std::vector<PlannerPool>& pools, const std::vector<double>& load,
                    const std::vector<std::vector<int>>& hosts);

// FAILED_PRECONDITION naming the first expert no usable pool can take (`key_name` names keys).
absl::StatusOr<LayerPlan> PlanLayer(const std::vector<PlannerPool>& pools,
                                    const PlannerLayer& layer, const PlannerOptions& options,
                                    const std::function<std::string(int key)>& key_name);

}  // namespace moe

#endif  // MOE_SERVICES_ROUTER_REBALANCER_H_
