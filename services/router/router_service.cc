#include "services/router/router_service.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/routing.h"
#include "services/common/host_port.h"
#include "services/common/status.h"
#include "services/common/tensor_codec.h"

namespace moe {
namespace {

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1};
}

// The host of a gRPC peer ("ipv4:10.0.0.2:40312", "ipv6:[::1]:40312"); empty when it has none
// (a unix socket, an in-process channel).
std::string PeerHost(const std::string& peer) {
  const size_t scheme = peer.find(':');
  if (scheme == std::string::npos) return "";
  const std::string kind = peer.substr(0, scheme);
  if (kind != "ipv4" && kind != "ipv6") return "";
  absl::StatusOr<HostPort> hp = ParseHostPort(peer.substr(scheme + 1), "peer");
  return hp.ok() ? hp->host : "";
}

}  // namespace

RouterService::RouterService(const ModelConfig& config, std::vector<torch::Tensor> gates,
                             ClusterSpec cluster, const RouterOptions& options,
                             prometheus::Registry& registry, const Logger* logger)
    : config_(config),
      gates_(MakeGates(gates)),
      logger_(logger),
      table_(config, cluster),
      replicas_(static_cast<int>(cluster.pools.size())),
      meter_(config.n_layers, config.n_experts + config.n_shared, options.load_window),
      policy_(DefaultPolicy(config)),
      controller_(config, &table_, &replicas_, &meter_, options.control, registry, logger) {
  auto& routed = prometheus::BuildCounter()
                     .Name("moe_expert_tokens_routed_total")
                     .Help("(token, slot) pairs the gate sent to each base expert")
                     .Register(registry);
  auto& dropped = prometheus::BuildCounter()
                      .Name("moe_tokens_dropped_total")
                      .Help("(token, slot) pairs dropped by the capacity limit")
                      .Register(registry);
  routed_counters_.resize(config.n_layers);
  for (int l = 0; l < config.n_layers; ++l) {
    for (int e = 0; e < config.n_experts; ++e) {
      // Created at zero so that idle experts show up in load figures.
      routed_counters_[l].push_back(
          &routed.Add({{"layer", absl::StrCat(l)}, {"expert", absl::StrCat(e)}}));
    }
    dropped_counters_.push_back(&dropped.Add({{"layer", absl::StrCat(l)}}));
  }
  route_seconds_ = &prometheus::BuildHistogram()
                        .Name("moe_route_duration_seconds")
                        .Help("Route calls and RouteStream messages, server side")
                        .Register(registry)
                        .Add({}, LatencyBuckets());
}

RouterService::~RouterService() { controller_.Stop(); }

absl::Status RouterService::CheckHosted(const RoutingView& view, int layer,
                                        const std::vector<double>& per_key) const {
  std::vector<std::string> missing;
  for (size_t key = 0; key < per_key.size(); ++key) {
    if (per_key[key] > 0 && view.hosts[layer][key].empty()) {
      missing.push_back(table_.KeyName(layer, static_cast<int>(key)));
    }
  }
  if (missing.empty()) return absl::OkStatus();
  const bool no_pools = std::all_of(view.addresses.begin(), view.addresses.end(),
                                    [](const std::string& a) { return a.empty(); });
  return absl::UnavailableError(absl::StrCat(
      absl::StrJoin(missing, ", "), ": hosted by no ready pool",
      no_pools ? " (no expert pool has joined this router yet: start pools with "
                 "--join=ROUTER_HOST:PORT)"
               : " yet (a pool is loading them, or none has room: see moectl placement)"));
}

absl::Status RouterService::DoRoute(const moe::v1::RouteRequest& req,
                                    moe::v1::RouteResponse* resp) {
  const absl::Time start = absl::Now();
  const int layer = req.layer();
  if (layer < 0 || layer >= config_.n_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer: must be in [0, ", config_.n_layers, "), got ", layer));
  }
  absl::StatusOr<torch::Tensor> hidden =
      DecodeTensor(req.hidden(), "hidden", {{-1, config_.d_model}, true});
  if (!hidden.ok()) return absl::InvalidArgumentError(hidden.status().message());
  const int64_t n = hidden->size(0);
  if (req.token_keys_size() != 0 && req.token_keys_size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("token_keys: ", req.token_keys_size(),
                                                   " keys for ", n,
                                                   " tokens (give one per token, or none)"));
  }
  RoutingPolicy policy;
  {
    absl::MutexLock lock(&mu_);
    policy = policy_;
  }
  std::vector<uint64_t> keys(req.token_keys().begin(), req.token_keys().end());
  c10::InferenceMode guard;
  RoutingResult r = RouteTokens(*hidden, gates_[layer], policy, layer, keys);
  const int k = policy.top_k;
  resp->set_layer(layer);
  resp->set_top_k(k);
  resp->set_dropped_tokens(r.dropped);
  const int64_t* ids = r.expert_ids.data_ptr<int64_t>();
  const float* w = r.weights.data_ptr<float>();
  // Tokens per base expert in this call: every row of an expert goes to one replica, so the
  // expert's matmul is the same as in-process (same rows, same shapes, same numbers).
  std::vector<double> per_key(config_.n_experts + config_.n_shared, 0);
  for (int64_t i = 0; i < n * k; ++i) {
    if (ids[i] >= 0) ++per_key[ids[i] / config_.granularity];
  }
  for (int s = 0; s < config_.n_shared; ++s)
    per_key[config_.n_experts + s] = static_cast<double>(n);
  // One placement for the whole call, whatever changes meanwhile.
  const std::shared_ptr<const RoutingView> view = table_.view();
  if (absl::Status s = CheckHosted(*view, layer, per_key); !s.ok()) return s;
  std::vector<LoadMeter::Work> work;
  std::vector<int> replica(config_.n_experts, -1);
  for (int e = 0; e < config_.n_experts; ++e) {
    if (per_key[e] == 0) continue;
    const std::vector<int>& hosts = view->hosts[layer][e];
    replica[e] = replicas_.Pick(hosts, per_key[e]);
    if (replica[e] < 0) {
      std::vector<std::string> names;
      for (int h : hosts) names.push_back(view->names[h]);
      return absl::UnavailableError(absl::StrCat("layer ", layer, " expert ", e,
                                                 ": no healthy pool (hosted by ",
                                                 absl::StrJoin(names, ", "), ")"));
    }
    work.push_back({e, replica[e], per_key[e]});
    routed_counters_[layer][e]->Increment(per_key[e]);
  }
  for (int s = 0; s < config_.n_shared; ++s) {
    const int p = replicas_.Pick(view->hosts[layer][config_.n_experts + s], static_cast<double>(n));
    if (p < 0) {
      return absl::UnavailableError(
          absl::StrCat("layer ", layer, " shared expert ", s, ": no healthy pool"));
    }
    work.push_back({config_.n_experts + s, p, static_cast<double>(n)});
    resp->add_shared_pool_index(p);
  }
  meter_.Add(layer, work);
  if (r.dropped > 0) dropped_counters_[layer]->Increment(static_cast<double>(r.dropped));
  for (const std::string& name : view->names) resp->add_pools(name);
  for (const std::string& address : view->addresses) resp->add_pool_addresses(address);
  resp->set_placement_epoch(view->epoch);
  moe::v1::RoutingPolicy* used = resp->mutable_policy();
  used->set_top_k(policy.top_k);
  used->set_noise_std(policy.noise_std);
  used->set_capacity_factor(policy.capacity_factor);
  used->set_noise_seed(policy.noise_seed);
  resp->mutable_expert_ids()->Reserve(n * k);
  for (int64_t i = 0; i < n * k; ++i) {
    resp->add_expert_ids(static_cast<int32_t>(ids[i]));
    resp->add_weights(w[i]);
    resp->add_pool_index(ids[i] >= 0 ? replica[ids[i] / config_.granularity] : -1);
  }
  if (req.return_probs()) EncodeTensor(r.probs, resp->mutable_probs());
  route_seconds_->Observe(absl::ToDoubleSeconds(absl::Now() - start));
  return absl::OkStatus();
}

absl::Status RouterService::DoGetPolicy(moe::v1::RoutingPolicy* resp) {
  absl::MutexLock lock(&mu_);
  resp->set_top_k(policy_.top_k);
  resp->set_noise_std(policy_.noise_std);
  resp->set_capacity_factor(policy_.capacity_factor);
  resp->set_noise_seed(policy_.noise_seed);
  return absl::OkStatus();
}

absl::Status RouterService::DoSetPolicy(const moe::v1::SetPolicyRequest& req,
                                        moe::v1::RoutingPolicy* resp) {
  RoutingPolicy p;
  p.top_k = req.policy().top_k() == 0 ? config_.top_k : req.policy().top_k();
  p.noise_std = req.policy().noise_std();
  p.capacity_factor = req.policy().capacity_factor();
  p.noise_seed = req.policy().noise_seed();
  if (absl::Status s = ValidatePolicy(p, config_); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("policy.", s.message()));
  }
  {
    absl::MutexLock lock(&mu_);
    policy_ = p;
  }
  logger_->Info("policy_set", {{"top_k", absl::StrCat(p.top_k)},
                               {"noise_std", absl::StrCat(p.noise_std)},
                               {"capacity_factor", absl::StrCat(p.capacity_factor)}});
  return DoGetPolicy(resp);
}

grpc::ServerUnaryReactor* RouterService::Route(grpc::CallbackServerContext* ctx,
                                               const moe::v1::RouteRequest* req,
                                               moe::v1::RouteResponse* resp) {
  return FinishUnary(ctx, DoRoute(*req, resp));
}

grpc::ServerBidiReactor<moe::v1::RouteRequest, moe::v1::RouteResponse>* RouterService::RouteStream(
    grpc::CallbackServerContext*) {
  return route_streams_.Open();
}

grpc::ServerUnaryReactor* RouterService::GetFrameEndpoint(grpc::CallbackServerContext* ctx,
                                                          const moe::v1::FrameEndpointRequest*,
                                                          moe::v1::FrameEndpoint* resp) {
  *resp = frame_endpoint_;
  return FinishUnary(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* RouterService::GetPolicy(grpc::CallbackServerContext* ctx,
                                                   const moe::v1::GetPolicyRequest*,
                                                   moe::v1::RoutingPolicy* resp) {
  return FinishUnary(ctx, DoGetPolicy(resp));
}

grpc::ServerUnaryReactor* RouterService::SetPolicy(grpc::CallbackServerContext* ctx,
                                                   const moe::v1::SetPolicyRequest* req,
                                                   moe::v1::RoutingPolicy* resp) {
  return FinishUnary(ctx, DoSetPolicy(*req, resp));
}

grpc::ServerUnaryReactor* RouterService::GetPlacement(grpc::CallbackServerContext* ctx,
                                                      const moe::v1::GetPlacementRequest*,
                                                      moe::v1::Placement* resp) {
  controller_.FillPlacement(resp);
  return FinishUnary(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* RouterService::ReportPoolFailure(
    grpc::CallbackServerContext* ctx, const moe::v1::ReportPoolFailureRequest* req,
    moe::v1::ReportPoolFailureResponse*) {
  absl::Status s = controller_.ReportFailure(req->pool(), req->error());
  if (!s.ok()) s = absl::InvalidArgumentError(absl::StrCat("pool: ", s.message()));
  return FinishUnary(ctx, s);
}

grpc::ServerUnaryReactor* RouterService::RegisterPool(grpc::CallbackServerContext* ctx,
                                                      const moe::v1::RegisterPoolRequest* req,
                                                      moe::v1::RegisterPoolResponse* resp) {
  absl::StatusOr<uint64_t> epoch = controller_.Register(*req, PeerHost(ctx->peer()));
  if (epoch.ok()) resp->set_epoch(*epoch);
  return FinishUnary(ctx, epoch.status());
}

grpc::ServerUnaryReactor* RouterService::DrainPool(grpc::CallbackServerContext* ctx,
                                                   const moe::v1::DrainPoolRequest* req,
                                                   moe::v1::Placement* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  controller_.Drain(req->pool(), [reactor, resp](absl::StatusOr<moe::v1::Placement> after) {
    if (after.ok()) *resp = *std::move(after);
    reactor->Finish(ToGrpcStatus(after.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* RouterService::Rebalance(grpc::CallbackServerContext* ctx,
                                                   const moe::v1::RebalanceRequest*,
                                                   moe::v1::RebalanceResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  controller_.Rebalance([reactor, resp](absl::StatusOr<moe::v1::RebalanceResponse> r) {
    if (r.ok()) *resp = *std::move(r);
    reactor->Finish(ToGrpcStatus(r.status()));
  });
  return reactor;
}

}  // namespace moe
