// A whole cluster inside one test process: expert pools, the router and, when asked, the
// orchestrator, each a real gRPC server (ServiceHost) on 127.0.0.1 port 0, over a random tiny
// model. For the services' own tests: no processes to start, and no fixed ports, so tests run in
// parallel. Not thread-safe to start or stop; the servers themselves are.
#ifndef MOE_SERVICES_TESTING_IN_PROCESS_CLUSTER_H_
#define MOE_SERVICES_TESTING_IN_PROCESS_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/checkpoint.h"
#include "models/config.h"
#include "models/test_util.h"
#include "services/common/log.h"
#include "services/common/placement.h"
#include "services/common/server.h"
#include "services/expert_pool/expert_pool_service.h"
#include "services/orchestrator/remote_executor.h"
#include "services/router/router_service.h"

namespace moe {
class EngineLanes;
class EventHub;
class InferenceModel;
class OrchestratorService;
class PlacementWatcher;
}  // namespace moe

namespace moe::testing {

struct InProcessPool {
  std::string name;
  std::vector<int> experts;  // base experts hosted, in every layer
  bool shared = false;       // hosts every shared expert too
  int expert_slots = 0;      // the pool's slot budget per layer (0 = any)
};

struct InProcessClusterOptions {
  ModelConfig config = TinyConfig();  // micro-experts and a shared expert
  uint64_t seed = 7;                  // of the random weights
  // Default: pool-a hosts every expert and the shared ones; pool-b replicates experts 2 and 3.
  std::vector<InProcessPool> pools;
  // No pools at all: the router starts with an empty placement, and pools come by JoinPool.
  bool start_empty = false;
  RouterOptions router;
  bool orchestrator = false;  // also start an orchestrator over a RemoteMoeExecutor
  RemoteExecutorOptions remote;
  int lanes = 1;
  int max_batch = 4;
  int max_requests = 256;  // the orchestrator's --max_requests
  int max_watchers = 64;   // the orchestrator's --max_watchers
};

class InProcessCluster {
 public:
  static absl::StatusOr<std::unique_ptr<InProcessCluster>> Start(InProcessClusterOptions options);
  ~InProcessCluster();

  const ModelConfig& config() const { return options_.config; }
  // The model every service serves, and where an embedded oracle can load the same one from.
  const Checkpoint& checkpoint() const { return checkpoint_; }
  const ModelSource& source() const { return source_; }
  const ClusterSpec& cluster() const { return cluster_; }

  std::string router_address() const;
  std::string pool_address(int i) const;
  std::string orchestrator_address() const;  // REQUIRES: options.orchestrator
  RouterService& router() { return *router_; }
  ExpertPoolService& pool(int i) { return *pools_[i].service; }
  prometheus::Registry& pool_registry(int i) { return pools_[i].host->registry(); }
  prometheus::Registry& orchestrator_registry() { return orchestrator_host_->registry(); }
  OrchestratorService& orchestrator() { return *orchestrator_; }  // REQUIRES: options.orchestrator

  // Shuts pool i's server down, as if the pool had died: calls to it fail UNAVAILABLE from now.
  void StopPool(int i);
  // Starts a pool that hosts `p.experts` at start and announces itself to the router
  // (RegisterPool), as `moe-expert-pool --join` does; a known name is that pool restarted on a
  // new port. Returns its index here (a restarted pool keeps its index).
  absl::StatusOr<int> JoinPool(const InProcessPool& p);
  // The same for the router.
  void StopRouter();

 private:
  InProcessCluster() = default;
  struct Pool {
    std::string name;
    std::unique_ptr<ServiceHost> host;
    std::unique_ptr<ExpertPoolService> service;
  };
  // Starts a pool server hosting p.experts (and p.shared); fills spec's name and address.
  absl::StatusOr<Pool> StartPool(const InProcessPool& p, PoolSpec* spec);

  InProcessClusterOptions options_;
  std::string dir_;
  ModelSource source_;
  Checkpoint checkpoint_;
  ClusterSpec cluster_;
  Logger logger_{"test"};
  std::vector<Pool> pools_;
  std::unique_ptr<ServiceHost> router_host_;
  std::unique_ptr<RouterService> router_;
  // The orchestrator's parts, in construction order.
  std::unique_ptr<ServiceHost> orchestrator_host_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<InferenceModel> model_;
  std::unique_ptr<EventHub> hub_;
  std::unique_ptr<moe::v1::Router::Stub> router_stub_;
  std::unique_ptr<PlacementWatcher> watcher_;
  std::unique_ptr<RemoteMoeExecutor> executor_;
  std::unique_ptr<EngineLanes> engine_;
  std::unique_ptr<OrchestratorService> orchestrator_;
};

}  // namespace moe::testing

#endif  // MOE_SERVICES_TESTING_IN_PROCESS_CLUSTER_H_
