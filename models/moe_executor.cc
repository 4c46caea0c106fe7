#include "models/moe_executor.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "models/routing.h"

namespace moe {

std::vector<float> ToFloatVector(const torch::Tensor& t) {
  torch::Tensor c = t.to(torch::kCPU, torch::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::vector<int32_t> ToIntVector(const torch::Tensor& t) {
  torch::Tensor c = t.to(torch::kCPU, torch::kInt).contiguous();
  return std::vector<int32_t>(c.data_ptr<int32_t>(), c.data_ptr<int32_t>() + c.numel());
}

namespace {

class DoneLayer : public PendingMoeLayer {
 public:
  explicit DoneLayer(absl::StatusOr<MoeLayerOutput> out) : out_(std::move(out)) {}
  absl::StatusOr<MoeLayerOutput> Wait() override { return std::move(out_); }

 private:
  absl::StatusOr<MoeLayerOutput> out_;
};

}  // namespace

std::unique_ptr<PendingMoeLayer> MoeExecutor::Begin(int layer, torch::Tensor x,
                                                    std::vector<uint64_t> token_keys,
                                                    bool want_probs) {
  return std::make_unique<DoneLayer>(Forward(layer, x, token_keys, want_probs));
}

absl::StatusOr<std::unique_ptr<LocalMoeExecutor>> LocalMoeExecutor::Create(
    const ModelConfig& config, const std::map<std::string, torch::Tensor>& state) {
  absl::StatusOr<std::vector<torch::Tensor>> gates = GateWeights(config, state);
  if (!gates.ok()) return gates.status();
  absl::StatusOr<ExpertBank> bank = ExpertBank::Build(
      config, state, [](int, int, bool) { return true; }, torch::kCPU);
  if (!bank.ok()) return bank.status();
  return std::unique_ptr<LocalMoeExecutor>(
      new LocalMoeExecutor(config, std::move(*gates), std::move(*bank)));
}

LocalMoeExecutor::LocalMoeExecutor(const ModelConfig& config, std::vector<torch::Tensor> gates,
                                   ExpertBank bank)
    : config_(config),
      gates_(MakeGates(gates)),
      bank_(std::move(bank)),
      policy_(DefaultPolicy(config)) {}

absl::Status LocalMoeExecutor::SetPolicy(const RoutingPolicy& policy) {
  if (absl::Status s = ValidatePolicy(policy, config_); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  policy_ = policy;
  return absl::OkStatus();
}

RoutingPolicy LocalMoeExecutor::policy() const {
  absl::MutexLock lock(&mu_);
  return policy_;
}

absl::StatusOr<MoeLayerOutput> LocalMoeExecutor::Forward(int layer, const torch::Tensor& x,
                                                         absl::Span<const uint64_t> token_keys,
                                                         bool want_probs) {
  if (layer < 0 || layer >= config_.n_layers) {
    return absl::InvalidArgumentError(absl::StrCat("layer: ", layer, " out of range"));
  }
  const absl::Time start = absl::Now();
  const RoutingPolicy policy = this->policy();
  RoutingResult r = RouteTokens(x, gates_[layer], policy, layer, token_keys);
  DispatchPlan plan = PlanDispatch(r.expert_ids);
  std::vector<torch::Tensor> outputs;
  outputs.reserve(plan.experts.size());
  for (size_t g = 0; g < plan.experts.size(); ++g) {
    outputs.push_back(
        bank_.Run(layer, static_cast<int>(plan.experts[g]), /*shared=*/false, x, plan.rows[g]));
  }
  MoeLayerOutput out;
  out.output = CombineExpertOutputs(outputs, plan, r.weights, config_.d_model);
  for (int s = 0; s < config_.n_shared; ++s) {
    out.output = out.output + bank_.Run(layer, s, /*shared=*/true, x, {});
  }
  out.top_k = policy.top_k;
  out.expert_ids = ToIntVector(r.expert_ids);
  out.weights = ToFloatVector(r.weights);
  if (want_probs) out.probs = ToFloatVector(r.probs);
  out.dropped = r.dropped;
  out.latency_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
  return out;
}

}  // namespace moe
