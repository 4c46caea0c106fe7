#include "services/router/router_service.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/routing.h"
#include "services/common/deadline.h"
#include "services/common/server.h"
#include "services/common/status.h"
#include "services/common/tensor_codec.h"

namespace moe {
namespace {

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1};
}

}  // namespace

RouterService::RouterService(const ModelConfig& config, std::vector<torch::Tensor> gates,
                             ClusterSpec cluster, const RouterOptions& options,
                             prometheus::Registry& registry, const Logger* logger)
    : config_(config),
      gates_(std::move(gates)),
      cluster_(std::move(cluster)),
      options_(options),
      logger_(logger),
      replicas_(static_cast<int>(cluster_.pools.size())),
      policy_(DefaultPolicy(config)) {
  auto& healthy = prometheus::BuildGauge()
                      .Name("moe_pool_healthy")
                      .Help("1 if the router sees the expert pool as healthy")
                      .Register(registry);
  for (const PoolSpec& p : cluster_.pools) {
    auto state = std::make_unique<PoolState>();
    auto channel = grpc::CreateCustomChannel(p.address, grpc::InsecureChannelCredentials(),
                                             InternalChannelArguments());
    state->health = grpc::health::v1::Health::NewStub(channel);
    state->pool = moe::v1::ExpertPool::NewStub(channel);
    state->healthy_gauge = &healthy.Add({{"pool", p.name}});
    state->healthy_gauge->Set(1);
    pools_.push_back(std::move(state));
  }
  routed_hosts_.resize(config.n_layers);
  shared_hosts_.resize(config.n_layers);
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
      routed_hosts_[l].push_back(cluster_.Hosts(l, e, false));
      // Created at zero so that idle experts show up in load figures.
      routed_counters_[l].push_back(
          &routed.Add({{"layer", absl::StrCat(l)}, {"expert", absl::StrCat(e)}}));
    }
    for (int s = 0; s < config.n_shared; ++s)
      shared_hosts_[l].push_back(cluster_.Hosts(l, s, true));
    dropped_counters_.push_back(&dropped.Add({{"layer", absl::StrCat(l)}}));
  }
  route_seconds_ = &prometheus::BuildHistogram()
                        .Name("moe_route_duration_seconds")
                        .Help("Route calls and RouteStream messages, server side")
                        .Register(registry)
                        .Add({}, LatencyBuckets());
}

RouterService::~RouterService() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (health_thread_.joinable()) health_thread_.join();
}

void RouterService::StartHealthChecks() {
  health_thread_ = std::thread([this] { HealthLoop(); });
}

void RouterService::SetHealthy(int pool, bool healthy, const std::string& why) {
  if (replicas_.SetHealthy(pool, healthy)) {
    if (healthy) {
      logger_->Info("pool_healthy", {{"pool", cluster_.pools[pool].name}});
    } else {
      logger_->Warn("pool_unhealthy", {{"pool", cluster_.pools[pool].name}, {"why", why}});
    }
  }
  pools_[pool]->healthy_gauge->Set(healthy ? 1 : 0);
}

void RouterService::HealthLoop() {
  while (!stop_.WaitForNotificationWithTimeout(options_.health_interval)) {
    for (size_t i = 0; i < pools_.size(); ++i) CheckPool(static_cast<int>(i));
  }
}

void RouterService::CheckPool(int index) {
  PoolState& p = *pools_[index];
  grpc::ClientContext ctx;
  SetTimeout(ctx, options_.health_timeout);
  grpc::health::v1::HealthCheckResponse resp;
  const grpc::Status st = p.health->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp);
  const bool ok = st.ok() && resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  if (ok) {
    bool known;
    {
      absl::MutexLock lock(&p.mu);
      if (!replicas_.healthy(index)) p.device.clear();  // a restarted pool may run elsewhere
      known = !p.device.empty();
    }
    if (!known) {
      // What the pool runs on, for GetPlacement (the cluster file does not say).
      grpc::ClientContext dctx;
      SetTimeout(dctx, options_.health_timeout);
      moe::v1::DescribeResponse d;
      if (p.pool->Describe(&dctx, moe::v1::DescribeRequest(), &d).ok()) {
        absl::MutexLock lock(&p.mu);
        p.device = d.device();
      }
    }
  }
  SetHealthy(index, ok, st.ok() ? "not serving" : st.error_message());
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
  std::vector<int64_t> per_expert(config_.n_experts, 0);
  for (int64_t i = 0; i < n * k; ++i) {
    if (ids[i] >= 0) ++per_expert[ids[i] / config_.granularity];
  }
  std::vector<int> replica(config_.n_experts, -1);
  for (int e = 0; e < config_.n_experts; ++e) {
    if (per_expert[e] == 0) continue;
    replica[e] = replicas_.Pick(routed_hosts_[layer][e], static_cast<double>(per_expert[e]));
    if (replica[e] < 0) {
      std::vector<std::string> names;
      for (int h : routed_hosts_[layer][e]) names.push_back(cluster_.pools[h].name);
      return absl::UnavailableError(absl::StrCat("layer ", layer, " expert ", e,
                                                 ": no healthy pool (hosted by ",
                                                 absl::StrJoin(names, ", "), ")"));
    }
    routed_counters_[layer][e]->Increment(static_cast<double>(per_expert[e]));
  }
  for (int s = 0; s < config_.n_shared; ++s) {
    const int p = replicas_.Pick(shared_hosts_[layer][s], static_cast<double>(n));
    if (p < 0) {
      return absl::UnavailableError(
          absl::StrCat("layer ", layer, " shared expert ", s, ": no healthy pool"));
    }
    resp->add_shared_pool_index(p);
  }
  if (r.dropped > 0) dropped_counters_[layer]->Increment(static_cast<double>(r.dropped));
  for (const PoolSpec& p : cluster_.pools) resp->add_pools(p.name);
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

absl::Status RouterService::DoGetPlacement(moe::v1::Placement* resp) {
  for (size_t i = 0; i < cluster_.pools.size(); ++i) {
    const PoolSpec& p = cluster_.pools[i];
    moe::v1::PoolInfo* info = resp->add_pools();
    info->set_name(p.name);
    info->set_address(p.address);
    info->set_healthy(replicas_.healthy(static_cast<int>(i)));
    {
      absl::MutexLock lock(&pools_[i]->mu);
      info->set_device(pools_[i]->device);
    }
    info->set_outstanding_tokens(static_cast<int64_t>(replicas_.load(static_cast<int>(i))));
    AddHostedExperts(p, config_, info->mutable_hosts());
  }
  return absl::OkStatus();
}

absl::Status RouterService::DoReportPoolFailure(const moe::v1::ReportPoolFailureRequest& req) {
  absl::StatusOr<int> pool = cluster_.FindPool(req.pool());
  if (!pool.ok())
    return absl::InvalidArgumentError(absl::StrCat("pool: ", pool.status().message()));
  SetHealthy(*pool, false, req.error());
  return absl::OkStatus();
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
  return FinishUnary(ctx, DoGetPlacement(resp));
}

grpc::ServerUnaryReactor* RouterService::ReportPoolFailure(
    grpc::CallbackServerContext* ctx, const moe::v1::ReportPoolFailureRequest* req,
    moe::v1::ReportPoolFailureResponse*) {
  return FinishUnary(ctx, DoReportPoolFailure(*req));
}

}  // namespace moe
