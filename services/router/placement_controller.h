// The router's control plane: everything that changes the placement, on one thread, one change
// at a time. It checks pool health (and heals a pool that comes back without the experts the
// placement gives it), runs the rebalancer every `rebalance_interval` and on demand, drains
// pools, and accepts pools that join.
//
// Safe changes, so that every token stays exact and no request is lost:
// - a new replica is added as loading (no tokens), its pool loads it (LoadExperts), and only then
//   is it ready (routable);
// - a replica to remove first leaves routing (dropping), and only after `drop_grace` (Route
//   answers already on their way to the pool land) does its pool drop it (DropExperts returns
//   once no call computes it); a Forward that still arrives later is refused FAILED_PRECONDITION
//   and the orchestrator re-routes it;
// - loads come before drops, and a replica is dropped only while its expert has another ready
//   replica on a healthy pool.
// Every routable change moves the epoch on.
//
// Thread-safe: the public methods may be called from any thread.
#ifndef MOE_SERVICES_ROUTER_PLACEMENT_CONTROLLER_H_
#define MOE_SERVICES_ROUTER_PLACEMENT_CONTROLLER_H_

#include <grpcpp/security/credentials.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "models/config.h"
#include "moe/v1/expert.grpc.pb.h"
#include "moe/v1/router.pb.h"
#include "services/common/log.h"
#include "services/router/load_meter.h"
#include "services/router/placement_table.h"
#include "services/router/rebalancer.h"
#include "services/router/replica_selector.h"

namespace moe {

struct ControllerOptions {
  absl::Duration health_interval = absl::Milliseconds(500);
  absl::Duration health_timeout = absl::Seconds(1);
  // Failed health checks in a row before a pool counts as unhealthy: one slow answer on a loaded
  // machine is not a dead pool. (A failure the orchestrator reports counts at once.)
  int health_failures = 2;
  absl::Duration rebalance_interval = absl::ZeroDuration();  // zero: only on demand
  absl::Duration drop_grace = absl::Seconds(1);
  absl::Duration change_timeout = absl::Seconds(60);  // one LoadExperts / DropExperts call
  // A pool failing its health checks this long is removed from the placement (it comes back by
  // joining again). Infinite: never.
  absl::Duration dead_pool_removal = absl::InfiniteDuration();
  PlannerOptions planner;
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // to the pools; null = plaintext
};

class PlacementController {
 public:
  PlacementController(const ModelConfig& config, PlacementTable* table, ReplicaSelector* replicas,
                      LoadMeter* meter, const ControllerOptions& options,
                      prometheus::Registry& registry, const Logger* logger);
  ~PlacementController();

  // Starts the control thread (health checks, periodic rebalance, queued requests).
  void Start();
  // Stops it; queued requests are answered UNAVAILABLE.
  void Stop();

  // Runs the rebalancer on the control thread; `done` gets the placement before and after.
  void Rebalance(std::function<void(absl::StatusOr<moe::v1::RebalanceResponse>)> done);
  // Drains the named pool on the control thread; `done` gets the placement after.
  void Drain(const std::string& pool, std::function<void(absl::StatusOr<moe::v1::Placement>)> done);
  // Adds (or updates) a pool that announced itself from `caller_host` (the peer's address; empty
  // when unknown). INVALID_ARGUMENT naming both model ids when its model differs, and naming
  // --advertise when it asks to be dialled on loopback from another host.
  absl::StatusOr<uint64_t> Register(const moe::v1::RegisterPoolRequest& req,
                                    const std::string& caller_host = "");
  // A pool failed a call: no tokens for it until its health check passes again.
  absl::Status ReportFailure(const std::string& pool, const std::string& why);
  void SetHealthy(int pool, bool healthy, const std::string& why);

  void FillPlacement(moe::v1::Placement* out) const;

 private:
  struct PoolLink {
    std::string address;
    std::unique_ptr<grpc::health::v1::Health::Stub> health;
    std::unique_ptr<moe::v1::ExpertPool::Stub> pool;
    bool described = false;  // Describe answered since the pool last became healthy
    absl::Time failing_since = absl::InfiniteFuture();  // first failed check of the current run
    int failed_checks = 0;                              // in a row
    prometheus::Gauge* healthy_gauge = nullptr;
  };
  using Target = std::vector<std::vector<std::vector<int>>>;  // [layer][key] -> pools

  void Loop();
  // Runs `task` on the control thread.
  void Enqueue(std::function<void(bool stopping)> task);
  void CheckHealth();
  // Health-checks the pool; true when it has just become usable (new, or back).
  bool CheckPool(int index);
  // Takes a pool dead for longer than options_.dead_pool_removal out of the placement.
  void RemoveDeadPool(int index);
  // Some (layer, expert) is hosted by no pool at all: the router started without pools, or the
  // only pool that hosted it was removed. An expert whose pool is merely unhealthy does not count:
  // that pool may be starting (pools of a cluster file come up at their own pace) or restarting,
  // and moving its experts at once would undo the configured placement.
  bool Incomplete() const;
  // The pool is back (or new): make it host what the placement says it hosts.
  void Reconcile(int index, const moe::v1::DescribeResponse& hosted);
  PoolLink& Link(int index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(links_mu_);
  moe::v1::ExpertPool::Stub* PoolStub(int index);

  // Plans every layer (INVALID when some layer cannot be placed) and applies what is adopted.
  absl::StatusOr<moe::v1::RebalanceResponse> DoRebalance(const std::string& why);
  // Moves the placement to `target` safely (see above).
  absl::Status Apply(const Target& target);
  absl::Status CallLoad(int pool, const std::vector<std::pair<int, int>>& keys);
  absl::Status CallDrop(int pool, const std::vector<std::pair<int, int>>& keys);
  absl::Status CallChange(int pool, const std::vector<std::pair<int, int>>& keys, bool load);
  std::vector<PlannerPool> PlannerPools() const;
  // Pools with a ready or loading replica of the key: what the placement gives it now.
  std::vector<int> CurrentHosts(int layer, int key) const;
  // New replicas on `pool`: loading (no tokens), loaded by the pool, then ready; removed again
  // if the pool cannot load them.
  absl::Status AddReplicas(int pool, const std::vector<std::pair<int, int>>& keys);
  // Sleeps up to `d`; false when stopping.
  bool Sleep(absl::Duration d);

  const ModelConfig config_;
  PlacementTable* const table_;
  ReplicaSelector* const replicas_;
  LoadMeter* const meter_;
  const ControllerOptions options_;
  const Logger* const logger_;

  mutable absl::Mutex links_mu_;
  std::map<int, PoolLink> links_ ABSL_GUARDED_BY(links_mu_);

  absl::Mutex queue_mu_;
  std::deque<std::function<void(bool)>> queue_ ABSL_GUARDED_BY(queue_mu_);
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;
  std::thread thread_;

  prometheus::Family<prometheus::Gauge>* healthy_family_;
  prometheus::Gauge* epoch_gauge_;
  prometheus::Family<prometheus::Counter>* rebalances_;
  prometheus::Family<prometheus::Counter>* replica_changes_;
  std::vector<prometheus::Gauge*> balancedness_;  // per layer
};

}  // namespace moe

#endif  // MOE_SERVICES_ROUTER_PLACEMENT_CONTROLLER_H_
