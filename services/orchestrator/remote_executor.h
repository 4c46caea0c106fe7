// MoE layers over the network: one Route call to the router, then one Forward call per pool, all
// pools in parallel, then the same combine as in-process. A pool that fails is reported to the
// router and the layer is re-routed to a replica; with no replica left the call fails with
// UNAVAILABLE naming the (layer, expert). Thread-safe.
#ifndef MOE_SERVICES_ORCHESTRATOR_REMOTE_EXECUTOR_H_
#define MOE_SERVICES_ORCHESTRATOR_REMOTE_EXECUTOR_H_

#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "models/moe_executor.h"
#include "moe/v1/expert.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"
#include "services/common/log.h"
#include "services/common/placement.h"

namespace moe {

struct RemoteExecutorOptions {
  absl::Duration route_deadline = absl::Seconds(5);
  absl::Duration forward_deadline = absl::Seconds(10);
  int max_attempts = 3;  // per layer call, re-routing after a pool failure
};

class RemoteMoeExecutor : public MoeExecutor {
 public:
  RemoteMoeExecutor(const ModelConfig& config, const ClusterSpec& cluster,
                    const RemoteExecutorOptions& options, prometheus::Registry& registry,
                    const Logger* logger);

  absl::StatusOr<MoeLayerOutput> Forward(int layer, const torch::Tensor& x,
                                         absl::Span<const uint64_t> token_keys,
                                         bool want_probs) override;

  moe::v1::Router::Stub& router() { return *router_; }

 private:
  absl::StatusOr<MoeLayerOutput> TryOnce(int layer, const torch::Tensor& x,
                                         absl::Span<const uint64_t> token_keys, bool want_probs,
                                         std::vector<std::string>* failed_pools);

  const ModelConfig config_;
  const ClusterSpec cluster_;
  const RemoteExecutorOptions options_;
  const Logger* logger_;
  std::unique_ptr<moe::v1::Router::Stub> router_;
  std::vector<std::unique_ptr<moe::v1::ExpertPool::Stub>> pools_;
  prometheus::Histogram* route_seconds_;
  std::vector<prometheus::Histogram*> forward_seconds_;  // per pool
};

}  // namespace moe

#endif  // MOE_SERVICES_ORCHESTRATOR_REMOTE_EXECUTOR_H_
