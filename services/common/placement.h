// The cluster file: which pools exist, where they listen, and which (layer, expert) each hosts.
// Placement is data: the local launcher, compose and Kubernetes read the same format. Torch-free.
// Thread-compatible plain values.
#ifndef MOE_SERVICES_COMMON_PLACEMENT_H_
#define MOE_SERVICES_COMMON_PLACEMENT_H_

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "models/config.h"

namespace moe {

struct PoolSpec {
  std::string name;
  std::string address;
  std::set<std::pair<int, int>> routed;  // (layer, base expert)
  std::set<std::pair<int, int>> shared;  // (layer, shared expert)
  bool Hosts(int layer, int expert, bool is_shared) const {
    return (is_shared ? shared : routed).count({layer, expert}) > 0;
  }
};

// Plain value; thread-compatible.
struct ClusterSpec {
  std::string router_address;
  std::string orchestrator_address;
  std::vector<PoolSpec> pools;

  // Indices into pools of every pool hosting the expert, in file order.
  std::vector<int> Hosts(int layer, int expert, bool is_shared) const;
  // Index of the pool named `name`, or NOT_FOUND listing the names.
  absl::StatusOr<int> FindPool(const std::string& name) const;
};

// Parses and validates against the model: every (layer, expert) and (layer, shared expert) must
// be hosted somewhere; names and addresses unique; ids in range. Errors name the culprit, e.g.
// "layer 2 expert 7: hosted by no pool".
absl::StatusOr<ClusterSpec> ParseCluster(const std::string& json_text, const ModelConfig& config);
absl::StatusOr<ClusterSpec> LoadCluster(const std::string& path, const ModelConfig& config);

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_PLACEMENT_H_
