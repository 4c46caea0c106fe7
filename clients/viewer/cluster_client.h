// The viewer's unary calls to a cluster: model facts and placement from the orchestrator, the
// routing policy from the router. Every call has a deadline; errors keep the gRPC code and name
// the address and the method. Thread-safe (gRPC stubs are).
#ifndef MOE_CLIENTS_VIEWER_CLUSTER_CLIENT_H_
#define MOE_CLIENTS_VIEWER_CLUSTER_CLIENT_H_

#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "moe/v1/orchestrator.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"

namespace moe::viewer {

class ClusterClient {
 public:
  // `router` may be empty: the policy calls then fail with Unavailable saying so. Both are
  // dialed with `credentials` (null = plaintext).
  ClusterClient(std::string target, std::string router,
                std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);

  absl::StatusOr<moe::v1::ModelInfo> GetModelInfo(absl::Duration timeout) const;
  absl::StatusOr<moe::v1::Placement> GetPlacement(absl::Duration timeout) const;
  absl::StatusOr<moe::v1::RoutingPolicy> GetPolicy(absl::Duration timeout) const;
  absl::StatusOr<moe::v1::RoutingPolicy> SetPolicy(const moe::v1::RoutingPolicy& policy,
                                                   absl::Duration timeout) const;

  const std::string& target() const { return target_; }
  moe::v1::Orchestrator::Stub* orchestrator() const { return orchestrator_.get(); }

 private:
  absl::Status NeedRouter() const;

  std::string target_;
  std::string router_;
  std::unique_ptr<moe::v1::Orchestrator::Stub> orchestrator_;
  std::unique_ptr<moe::v1::Router::Stub> router_stub_;  // null without a router address
};

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_CLUSTER_CLIENT_H_
