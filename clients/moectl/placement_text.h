// The placement as moectl prints it for people: one line per pool (health, slots, what it hosts
// per layer, what it is loading) and one per layer (balancedness, windowed expert loads).
#ifndef MOE_CLIENTS_MOECTL_PLACEMENT_TEXT_H_
#define MOE_CLIENTS_MOECTL_PLACEMENT_TEXT_H_

#include <string>

#include "moe/v1/placement.pb.h"
#include "moe/v1/router.pb.h"

namespace moe::cli {

// "epoch 7\npool-a  healthy  cpu  slots 4  L0 0 1 2 s0 | L1 ...\n...\nlayer 0  balancedness 0.98
// ..."
std::string FormatPlacement(const moe::v1::Placement& p);

// Before and after, and per layer the planned balancedness change and the rebalancer's reason.
std::string FormatRebalance(const moe::v1::RebalanceResponse& r);

}  // namespace moe::cli

#endif  // MOE_CLIENTS_MOECTL_PLACEMENT_TEXT_H_
