// The Router service: gates (the shared routing math) plus replica choice among healthy pools.
// Thread-safe.
#ifndef MOE_SERVICES_ROUTER_ROUTER_SERVICE_H_
#define MOE_SERVICES_ROUTER_ROUTER_SERVICE_H_

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "models/config.h"
#include "moe/v1/expert.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"
#include "services/common/log.h"
#include "services/common/message_streams.h"
#include "services/common/placement.h"
#include "services/router/replica_selector.h"

namespace moe {

struct RouterOptions {
  absl::Duration health_interval = absl::Milliseconds(500);
  absl::Duration health_timeout = absl::Milliseconds(400);
};

class RouterService final : public moe::v1::Router::CallbackService {
 public:
  // gates: per layer [n_experts * m, d_model].
  RouterService(const ModelConfig& config, std::vector<torch::Tensor> gates, ClusterSpec cluster,
                const RouterOptions& options, prometheus::Registry& registry, const Logger* logger);
  ~RouterService() override;

  // Polls every pool's grpc.health.v1 in the background.
  void StartHealthChecks();
  // Ends RouteStreams after their current message and refuses new ones: call before shutting the
  // server down.
  void CloseStreams() { route_streams_.Close(); }

  // Unary handlers run inline on gRPC's callback threads: no hand-off to a thread pool, which
  // on a loaded machine costs more than the routing itself.
  grpc::ServerUnaryReactor* Route(grpc::CallbackServerContext* ctx,
                                  const moe::v1::RouteRequest* req,
                                  moe::v1::RouteResponse* resp) override;
  grpc::ServerBidiReactor<moe::v1::RouteRequest, moe::v1::RouteResponse>* RouteStream(
      grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* GetPolicy(grpc::CallbackServerContext* ctx,
                                      const moe::v1::GetPolicyRequest* req,
                                      moe::v1::RoutingPolicy* resp) override;
  grpc::ServerUnaryReactor* SetPolicy(grpc::CallbackServerContext* ctx,
                                      const moe::v1::SetPolicyRequest* req,
                                      moe::v1::RoutingPolicy* resp) override;
  grpc::ServerUnaryReactor* GetPlacement(grpc::CallbackServerContext* ctx,
                                         const moe::v1::GetPlacementRequest* req,
                                         moe::v1::Placement* resp) override;
  grpc::ServerUnaryReactor* ReportPoolFailure(grpc::CallbackServerContext* ctx,
                                              const moe::v1::ReportPoolFailureRequest* req,
                                              moe::v1::ReportPoolFailureResponse* resp) override;

 private:
  absl::Status DoRoute(const moe::v1::RouteRequest& req, moe::v1::RouteResponse* resp);
  absl::Status DoGetPolicy(moe::v1::RoutingPolicy* resp);
  absl::Status DoSetPolicy(const moe::v1::SetPolicyRequest& req, moe::v1::RoutingPolicy* resp);
  absl::Status DoGetPlacement(moe::v1::Placement* resp);
  absl::Status DoReportPoolFailure(const moe::v1::ReportPoolFailureRequest& req);

  struct PoolState {
    std::unique_ptr<grpc::health::v1::Health::Stub> health;
    std::unique_ptr<moe::v1::ExpertPool::Stub> pool;
    absl::Mutex mu;
    std::string device ABSL_GUARDED_BY(mu);  // from Describe, once the pool is healthy
    prometheus::Gauge* healthy_gauge = nullptr;
  };
  void HealthLoop();
  // One health check of pool `index` (and a Describe the first time it answers).
  void CheckPool(int index);
  void SetHealthy(int pool, bool healthy, const std::string& why);

  const ModelConfig config_;
  const std::vector<torch::Tensor> gates_;
  const ClusterSpec cluster_;
  const RouterOptions options_;
  const Logger* logger_;
  std::vector<std::unique_ptr<PoolState>> pools_;
  // [layer][expert] -> pools hosting it.
  std::vector<std::vector<std::vector<int>>> routed_hosts_, shared_hosts_;

  ReplicaSelector replicas_;

  mutable absl::Mutex mu_;
  RoutingPolicy policy_ ABSL_GUARDED_BY(mu_);

  std::vector<std::vector<prometheus::Counter*>> routed_counters_;  // [layer][expert]
  std::vector<prometheus::Counter*> dropped_counters_;              // [layer]
  prometheus::Histogram* route_seconds_;

  MessageStreams<moe::v1::RouteRequest, moe::v1::RouteResponse> route_streams_{
      [this](const moe::v1::RouteRequest& req, moe::v1::RouteResponse* resp) {
        return DoRoute(req, resp);
      }};

  absl::Notification stop_;
  std::thread health_thread_;
};

}  // namespace moe

#endif  // MOE_SERVICES_ROUTER_ROUTER_SERVICE_H_
