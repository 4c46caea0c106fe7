// The live placement, owned by the router: which pools exist, which experts each hosts and in
// what state, versioned by an epoch that only grows. The cluster file is only its start.
//
// Experts are addressed by key: routed base expert e is key e, shared expert s is key
// n_experts + s. A replica is loading (its pool is loading the weights: no tokens yet), ready
// (routable) or dropping (no new tokens; its pool drops it once work in flight is done).
//
// Thread-safe. Route handlers read an immutable RoutingView, republished on every change.
#ifndef MOE_SERVICES_ROUTER_PLACEMENT_TABLE_H_
#define MOE_SERVICES_ROUTER_PLACEMENT_TABLE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "models/config.h"
#include "services/common/placement.h"

namespace moe {

enum class ReplicaState { kLoading, kReady, kDropping };

struct PoolEntry {
  std::string name;
  std::string address;
  std::string device;     // from Describe or RegisterPool
  int expert_slots = 0;   // experts (routed and shared) per layer at most; 0 = any
  bool draining = false;  // receives no new experts
  // Dead too long: out of the placement (no replicas, not listed) until it joins again. Its
  // index stays reserved for it.
  bool removed = false;
};

// What Route needs, frozen at one epoch.
struct RoutingView {
  uint64_t epoch = 0;
  std::vector<std::string> names;                    // per pool index
  std::vector<std::string> addresses;                // per pool index
  std::vector<std::vector<std::vector<int>>> hosts;  // [layer][key] -> pools with a ready replica
};

class PlacementTable {
 public:
  struct Replica {
    int layer;
    int key;
    int pool;
    ReplicaState state;
  };
  struct Change {
    int layer;
    int key;
    int pool;
    std::optional<ReplicaState> state;  // nullopt: remove the replica
  };

  // Every replica of the cluster file starts ready, at epoch 1.
  PlacementTable(const ModelConfig& config, const ClusterSpec& start);

  int n_keys() const { return n_keys_; }
  // "layer 2 expert 5", "layer 0 shared expert 0": how messages name a key.
  std::string KeyName(int layer, int key) const;

  std::shared_ptr<const RoutingView> view() const;
  uint64_t epoch() const;

  int pool_count() const;
  PoolEntry pool(int index) const;
  std::vector<PoolEntry> pools() const;
  // Index of the named pool, or NOT_FOUND listing the names. Removed pools are not found.
  absl::StatusOr<int> FindPool(const std::string& name) const;
  // A new pool, or a known one's new address, device and slots (and no longer draining or
  // removed). Returns its index; pool indices never change.
  int UpsertPool(const PoolEntry& entry);
  // Takes the pool out of the placement: its replicas go, and it is no longer listed or found
  // until UpsertPool brings it back. Moves the epoch on.
  void RemovePool(int pool);
  // What the pool says of itself (Describe): its device and slot budget.
  void SetDescribed(int pool, const std::string& device, int expert_slots);
  void SetDraining(int pool, bool draining);

  std::vector<Replica> replicas() const;
  std::vector<Replica> replicas_of_pool(int pool) const;
  // Pools with a replica of the key in `state`.
  std::vector<int> Hosts(int layer, int key, ReplicaState state) const;

  // Applies changes together and moves the epoch on once if anything changed. Returns the epoch.
  uint64_t Apply(absl::Span<const Change> changes);

 private:
  void PublishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ModelConfig config_;
  const int n_keys_;
  mutable absl::Mutex mu_;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<PoolEntry> pools_ ABSL_GUARDED_BY(mu_);
  std::map<std::tuple<int, int, int>, ReplicaState> replicas_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const RoutingView> view_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moe

#endif  // MOE_SERVICES_ROUTER_PLACEMENT_TABLE_H_
