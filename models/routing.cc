#include "models/routing.h"

#include <cmath>

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

RoutingResult RouteTokens(const torch::Tensor& hidden, const torch::Tensor& gate_weight,
                          const RoutingPolicy& policy, int layer,
                          absl::Span<const uint64_t> token_keys) {
  const int64_t n = hidden.size(0);
  const int64_t e = gate_weight.size(0);
  const int64_t k = policy.top_k;
  RoutingResult r;
  r.logits = torch::linear(hidden, gate_weight);  // [N, E]
  torch::Tensor scores = r.logits;
  if (policy.noise_std > 0) {
    torch::Tensor noise = torch::empty({n, e}, torch::kFloat);
    float* p = noise.data_ptr<float>();
    for (int64_t t = 0; t < n; ++t) {
      const uint64_t key = token_keys.empty() ? static_cast<uint64_t>(t) : token_keys[t];
      for (int64_t x = 0; x < e; ++x) {
        p[t * e + x] = static_cast<float>(
            policy.noise_std * KeyedGaussian(policy.noise_seed, layer, key, static_cast<int>(x)));
      }
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
    const int64_t capacity = static_cast<int64_t>(
        std::ceil(policy.capacity_factor * static_cast<double>(n * k) / static_cast<double>(e)));
    torch::Tensor ids_cpu = ids.to(torch::kCPU).clone();
    int64_t* idp = ids_cpu.data_ptr<int64_t>();
    std::vector<int64_t> load(e, 0);
    torch::Tensor keep = torch::ones({n, k}, torch::kFloat);
    float* kp = keep.data_ptr<float>();
    for (int64_t slot = 0; slot < k; ++slot) {
      for (int64_t t = 0; t < n; ++t) {
        int64_t& id = idp[t * k + slot];
        if (load[id] >= capacity) {
          id = -1;
          kp[t * k + slot] = 0;
          ++r.dropped;
        } else {
          ++load[id];
        }
      }
    }
    if (r.dropped > 0) {
      r.expert_ids = ids_cpu.to(ids.device());
      r.weights = r.weights * keep.to(r.weights.device());
    }
  }
  return r;
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
