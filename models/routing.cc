#include "models/routing.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/packed_tensor.h"
#include "models/splitmix.h"

namespace moe {
double KeyedGaussian(uint64_t seed, int layer, uint64_t token_key, int expert) {
  uint64_t h = SplitMix64(seed ^ SplitMix64(static_cast<uint64_t>(layer) + 0x51ed27ull));
  h = SplitMix64(h ^ token_key);
  h = SplitMix64(h ^ static_cast<uint64_t>(expert));
  const uint64_t h2 = SplitMix64(h);
  // Uniforms in (0, 1]: never log(0).
  const double u1 = (static_cast<double>(h >> 11) + 1.0) * 0x1.0p-53;
  const double u2 = static_cast<double>(h2 >> 11) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

namespace {

// Noise of token t for expert x, as added to the logits.
float Noise(const RoutingPolicy& policy, int layer, absl::Span<const uint64_t> token_keys,
            int64_t t, int64_t x) {
  const uint64_t key = token_keys.empty() ? static_cast<uint64_t>(t) : token_keys[t];
  return static_cast<float>(policy.noise_std *
                            KeyedGaussian(policy.noise_seed, layer, key, static_cast<int>(x)));
}

// Keeps (token, slot) pairs while their expert has room: slot 0 of every token first, then slot
// 1, ..., each in token order. Dropped pairs get id -1 and weight 0. Returns the pairs dropped.
int64_t ApplyCapacity(double capacity_factor, int64_t n, int64_t k, int64_t e, int64_t* ids,
                      float* weights) {
  const int64_t capacity = static_cast<int64_t>(
      std::ceil(capacity_factor * static_cast<double>(n * k) / static_cast<double>(e)));
  std::vector<int64_t> load(e, 0);
  int64_t dropped = 0;
  for (int64_t slot = 0; slot < k; ++slot) {
    for (int64_t t = 0; t < n; ++t) {
      int64_t& id = ids[t * k + slot];
      if (load[id] >= capacity) {
        id = -1;
        weights[t * k + slot] = 0;
        ++dropped;
      } else {
        ++load[id];
      }
    }
  }
  return dropped;
}

// Everything after the gate's matmul, in plain loops over the [N, E] logits: for inference,
// where the dozen small tensor ops of the differentiable path cost more than the math (a decode
// step routes a handful of tokens over a handful of experts). Same rule as the tensor path; the
// last bits of probabilities and weights may differ from it, so inference and training each keep
// to one path.
void RouteRows(const torch::Tensor& logits, const RoutingPolicy& policy, int layer,
               absl::Span<const uint64_t> token_keys, RoutingResult* r) {
  const int64_t n = logits.size(0), e = logits.size(1), k = policy.top_k;
  const torch::Tensor lc = logits.contiguous();
  const float* lp = lc.data_ptr<float>();
  r->probs = torch::empty({n, e}, torch::kFloat);
  r->expert_ids = torch::empty({n, k}, torch::kInt64);
  r->weights = torch::empty({n, k}, torch::kFloat);
  float* probs = r->probs.data_ptr<float>();
  int64_t* ids = r->expert_ids.data_ptr<int64_t>();
  float* weights = r->weights.data_ptr<float>();
  std::vector<float> scores(e);
  std::vector<char> taken(e);
  for (int64_t t = 0; t < n; ++t) {
    float top = -INFINITY;
    for (int64_t x = 0; x < e; ++x) {
      scores[x] = lp[t * e + x];
      if (policy.noise_std > 0) scores[x] += Noise(policy, layer, token_keys, t, x);
      top = std::max(top, scores[x]);
    }
    float sum = 0;
    float* p = probs + t * e;
    for (int64_t x = 0; x < e; ++x) sum += (p[x] = std::exp(scores[x] - top));
    for (int64_t x = 0; x < e; ++x) p[x] /= sum;
    // Top-k by repeated strict maximum: ties go to the lower id.
    std::fill(taken.begin(), taken.end(), 0);
    float chosen = 0;
    for (int64_t s = 0; s < k; ++s) {
      int64_t best = -1;
      for (int64_t x = 0; x < e; ++x) {
        if (!taken[x] && (best < 0 || p[x] > p[best])) best = x;
      }
      taken[best] = 1;
      ids[t * k + s] = best;
      weights[t * k + s] = p[best];
      chosen += p[best];
    }
    for (int64_t s = 0; s < k; ++s) weights[t * k + s] /= chosen;
  }
  if (policy.capacity_factor > 0) {
    r->dropped = ApplyCapacity(policy.capacity_factor, n, k, e, ids, weights);
  }
}

}  // namespace

absl::StatusOr<std::vector<torch::Tensor>> GateWeights(
    const ModelConfig& config, const std::map<std::string, torch::Tensor>& state) {
  std::vector<torch::Tensor> gates;
  for (int l = 0; l < config.n_layers; ++l) {
    const std::string name = absl::StrCat("blocks.", l, ".moe.router.gate.weight");
    auto it = state.find(name);
    if (it == state.end()) return absl::NotFoundError(absl::StrCat("missing tensor ", name));
    const torch::Tensor& g = it->second;
    if (g.dim() != 2 || g.size(0) != config.n_routed() || g.size(1) != config.d_model) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": shape [",
                                                     absl::StrJoin(g.sizes(), ", "), "], want [",
                                                     config.n_routed(), ", ", config.d_model, "]"));
    }
    gates.push_back(g.contiguous());
  }
  return gates;
}

namespace {

// Everything after the logits: the fast loops for inference on the CPU, tensor ops otherwise.
RoutingResult RouteLogits(torch::Tensor logits, const RoutingPolicy& policy, int layer,
                          absl::Span<const uint64_t> token_keys, bool differentiable) {
  const int64_t n = logits.size(0);
  const int64_t e = logits.size(1);
  const int64_t k = policy.top_k;
  RoutingResult r;
  r.logits = std::move(logits);
  if (!differentiable && r.logits.device().is_cpu() && r.logits.scalar_type() == torch::kFloat) {
    RouteRows(r.logits, policy, layer, token_keys, &r);
    return r;
  }
  torch::Tensor scores = r.logits;
  if (policy.noise_std > 0) {
    torch::Tensor noise = torch::empty({n, e}, torch::kFloat);
    float* p = noise.data_ptr<float>();
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t x = 0; x < e; ++x) p[t * e + x] = Noise(policy, layer, token_keys, t, x);
    }
    scores = scores + noise.to(scores.device());
  }
  r.probs = torch::softmax(scores, -1);
  // A stable descending sort keeps equal probabilities in id order: ties go to the lower id.
  torch::Tensor order = std::get<1>(r.probs.detach().sort(/*stable=*/true, /*dim=*/-1,
                                                          /*descending=*/true));
  torch::Tensor ids = order.narrow(1, 0, k).contiguous();  // [N, k]
  torch::Tensor top = r.probs.gather(1, ids);
  r.weights = top / top.sum(-1, /*keepdim=*/true);
  r.expert_ids = ids;
  if (policy.capacity_factor > 0) {
    torch::Tensor ids_cpu = ids.to(torch::kCPU).clone();
    torch::Tensor keep = torch::ones({n, k}, torch::kFloat);
    r.dropped = ApplyCapacity(policy.capacity_factor, n, k, e, ids_cpu.data_ptr<int64_t>(),
                              keep.data_ptr<float>());
    if (r.dropped > 0) {
      r.expert_ids = ids_cpu.to(ids.device());
      r.weights = r.weights * keep.to(r.weights.device());
    }
  }
  return r;
}

}  // namespace

RoutingResult RouteTokens(const torch::Tensor& hidden, const torch::Tensor& gate_weight,
                          const RoutingPolicy& policy, int layer,
                          absl::Span<const uint64_t> token_keys) {
  const bool differentiable =
      torch::GradMode::is_enabled() && (hidden.requires_grad() || gate_weight.requires_grad());
  return RouteLogits(torch::linear(hidden, gate_weight), policy, layer, token_keys, differentiable);
}

PackedGate::PackedGate(const torch::Tensor& weight) : weight_(weight.contiguous()) {
  if (weight_.device().is_cpu()) {
    torch::Tensor t = weight_.to(torch::kFloat).t().contiguous();  // [C, E*m]
    packed_ = std::make_shared<const PackedMatrix>(t.data_ptr<float>(), t.size(0), t.size(1));
  }
}

torch::Tensor PackedGate::Logits(const torch::Tensor& hidden) const {
  if (packed_ == nullptr || !hidden.device().is_cpu()) return torch::linear(hidden, weight_);
  return Multiply(*packed_, hidden);
}

std::vector<PackedGate> MakeGates(const std::vector<torch::Tensor>& weights) {
  std::vector<PackedGate> gates;
  gates.reserve(weights.size());
  for (const torch::Tensor& w : weights) gates.emplace_back(w);
  return gates;
}

RoutingResult RouteTokens(const torch::Tensor& hidden, const PackedGate& gate,
                          const RoutingPolicy& policy, int layer,
                          absl::Span<const uint64_t> token_keys) {
  return RouteLogits(gate.Logits(hidden), policy, layer, token_keys, /*differentiable=*/false);
}

torch::Tensor LoadBalancingLoss(const RoutingResult& r) {
  const int64_t e = r.probs.size(1);
  torch::Tensor ids = r.expert_ids.reshape({-1});
  torch::Tensor kept = ids.ge(0);
  torch::Tensor counts =
      torch::zeros({e}, r.probs.options())
          .index_add(0, ids.masked_select(kept),
                     torch::ones({kept.sum().item<int64_t>()}, r.probs.options()));
  torch::Tensor f = counts / std::max<int64_t>(1, ids.numel());
  torch::Tensor p = r.probs.mean(0);
  return static_cast<double>(e) * (f * p).sum();
}

torch::Tensor RouterZLoss(const RoutingResult& r) {
  return torch::logsumexp(r.logits, -1).pow(2).mean();
}

}  // namespace moe
