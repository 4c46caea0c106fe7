#include "clients/viewer/cluster_client.h"

#include <grpcpp/grpcpp.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/deadline.h"
#include "services/common/status.h"
#include "services/common/tls.h"

namespace moe::viewer {
namespace {

absl::Status Named(const grpc::Status& status, absl::string_view who, absl::string_view address,
                   absl::string_view method) {
  const absl::Status s = FromGrpcStatus(status);
  return absl::Status(s.code(), absl::StrCat(who, " ", address, ": ", method, ": ", s.message()));
}

}  // namespace

ClusterClient::ClusterClient(std::string target, std::string router,
                             std::shared_ptr<grpc::ChannelCredentials> credentials)
    : target_(std::move(target)), router_(std::move(router)) {
  orchestrator_ = moe::v1::Orchestrator::NewStub(Endpoint(target_, credentials).Dial());
  if (!router_.empty()) {
    router_stub_ = moe::v1::Router::NewStub(Endpoint(router_, credentials).Dial());
  }
}

absl::StatusOr<moe::v1::ModelInfo> ClusterClient::GetModelInfo(absl::Duration timeout) const {
  grpc::ClientContext context;
  SetTimeout(context, timeout);
  moe::v1::ModelInfo info;
  grpc::Status s = orchestrator_->GetModelInfo(&context, moe::v1::GetModelInfoRequest(), &info);
  if (!s.ok()) return Named(s, "orchestrator", target_, "GetModelInfo");
  return info;
}

absl::StatusOr<moe::v1::Placement> ClusterClient::GetPlacement(absl::Duration timeout) const {
  grpc::ClientContext context;
  SetTimeout(context, timeout);
  moe::v1::Placement placement;
  grpc::Status s =
      orchestrator_->GetPlacement(&context, moe::v1::GetPlacementRequest(), &placement);
  if (!s.ok()) return Named(s, "orchestrator", target_, "GetPlacement");
  return placement;
}

absl::Status ClusterClient::NeedRouter() const {
  if (router_stub_ != nullptr) return absl::OkStatus();
  return absl::UnavailableError(
      "no router address: start the viewer with --router=HOST:PORT to read or change the policy");
}

absl::StatusOr<moe::v1::RoutingPolicy> ClusterClient::GetPolicy(absl::Duration timeout) const {
  if (absl::Status s = NeedRouter(); !s.ok()) return s;
  grpc::ClientContext context;
  SetTimeout(context, timeout);
  moe::v1::RoutingPolicy policy;
  grpc::Status s = router_stub_->GetPolicy(&context, moe::v1::GetPolicyRequest(), &policy);
  if (!s.ok()) return Named(s, "router", router_, "GetPolicy");
  return policy;
}

absl::StatusOr<moe::v1::RoutingPolicy> ClusterClient::SetPolicy(
    const moe::v1::RoutingPolicy& policy, absl::Duration timeout) const {
  if (absl::Status s = NeedRouter(); !s.ok()) return s;
  grpc::ClientContext context;
  SetTimeout(context, timeout);
  moe::v1::SetPolicyRequest request;
  *request.mutable_policy() = policy;
  moe::v1::RoutingPolicy now;
  grpc::Status s = router_stub_->SetPolicy(&context, request, &now);
  if (!s.ok()) return Named(s, "router", router_, "SetPolicy");
  return now;
}

}  // namespace moe::viewer
