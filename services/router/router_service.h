// The Router service: the gates (the shared routing math), the choice of replica for each
// expert's rows, and the live placement, which it owns (placement_table.h) and changes through
// its control plane (placement_controller.h): health, healing, rebalancing, drains and joins.
// Thread-safe.
#ifndef MOE_SERVICES_ROUTER_ROUTER_SERVICE_H_
#define MOE_SERVICES_ROUTER_ROUTER_SERVICE_H_

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "models/config.h"
#include "models/routing.h"
#include "moe/v1/router.grpc.pb.h"
#include "services/common/log.h"
#include "services/common/message_streams.h"
#include "services/common/placement.h"
#include "services/router/load_meter.h"
#include "services/router/placement_controller.h"
#include "services/router/placement_table.h"
#include "services/router/replica_selector.h"

namespace moe {

struct RouterOptions {
  ControllerOptions control;
  absl::Duration load_window = absl::Seconds(30);  // half-life of the measured expert loads
};

class RouterService final : public moe::v1::Router::CallbackService {
 public:
  // gates: per layer [n_experts * m, d_model]. `cluster`: the starting placement.
  RouterService(const ModelConfig& config, std::vector<torch::Tensor> gates, ClusterSpec cluster,
                const RouterOptions& options, prometheus::Registry& registry, const Logger* logger);
  ~RouterService() override;

  // Starts the control plane: health checks of every pool, healing, periodic rebalancing.
  void StartHealthChecks() { controller_.Start(); }
  // What GetFrameEndpoint answers (frame_service.h); set before serving.
  void SetFrameEndpoint(moe::v1::FrameEndpoint endpoint) { frame_endpoint_ = std::move(endpoint); }
  // Route over frames: the same handler as RouteStream's.
  FrameServer::Handler frame_handler() const { return route_streams_.frame_handler(); }
  // Ends RouteStreams after their current message and refuses new ones, and stops the control
  // plane: call before shutting the server down.
  void CloseStreams() {
    route_streams_.Close();
    controller_.Stop();
  }

  // Unary handlers run inline on gRPC's callback threads: no hand-off to a thread pool, which
  // on a loaded machine costs more than the routing itself. Control methods that take time
  // (DrainPool, Rebalance) are finished from the control thread.
  grpc::ServerUnaryReactor* Route(grpc::CallbackServerContext* ctx,
                                  const moe::v1::RouteRequest* req,
                                  moe::v1::RouteResponse* resp) override;
  grpc::ServerBidiReactor<moe::v1::RouteRequest, moe::v1::RouteResponse>* RouteStream(
      grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* GetFrameEndpoint(grpc::CallbackServerContext* ctx,
                                             const moe::v1::FrameEndpointRequest* req,
                                             moe::v1::FrameEndpoint* resp) override;
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
  grpc::ServerUnaryReactor* RegisterPool(grpc::CallbackServerContext* ctx,
                                         const moe::v1::RegisterPoolRequest* req,
                                         moe::v1::RegisterPoolResponse* resp) override;
  grpc::ServerUnaryReactor* DrainPool(grpc::CallbackServerContext* ctx,
                                      const moe::v1::DrainPoolRequest* req,
                                      moe::v1::Placement* resp) override;
  grpc::ServerUnaryReactor* Rebalance(grpc::CallbackServerContext* ctx,
                                      const moe::v1::RebalanceRequest* req,
                                      moe::v1::RebalanceResponse* resp) override;

 private:
  // UNAVAILABLE naming every key of `layer` with work (per_key > 0) that no pool hosts ready.
  absl::Status CheckHosted(const RoutingView& view, int layer,
                           const std::vector<double>& per_key) const;
  absl::Status DoRoute(const moe::v1::RouteRequest& req, moe::v1::RouteResponse* resp);
  absl::Status DoGetPolicy(moe::v1::RoutingPolicy* resp);
  absl::Status DoSetPolicy(const moe::v1::SetPolicyRequest& req, moe::v1::RoutingPolicy* resp);

  const ModelConfig config_;
  const std::vector<PackedGate> gates_;  // packed: routing.h
  const Logger* logger_;
  PlacementTable table_;
  ReplicaSelector replicas_;
  LoadMeter meter_;

  mutable absl::Mutex mu_;
  RoutingPolicy policy_ ABSL_GUARDED_BY(mu_);

  std::vector<std::vector<prometheus::Counter*>> routed_counters_;  // [layer][expert]
  std::vector<prometheus::Counter*> dropped_counters_;              // [layer]
  prometheus::Histogram* route_seconds_;

  MessageStreams<moe::v1::RouteRequest, moe::v1::RouteResponse> route_streams_{
      [this](const moe::v1::RouteRequest& req, moe::v1::RouteResponse* resp) {
        return DoRoute(req, resp);
      }};
  moe::v1::FrameEndpoint frame_endpoint_;  // set before serving, read-only after
  PlacementController controller_;         // last: its thread uses the members above
};

}  // namespace moe

#endif  // MOE_SERVICES_ROUTER_ROUTER_SERVICE_H_
