// The gate's math as one pure function: (hidden states, gate weight, policy) -> (experts, weights,
// probabilities). The embedded runner, the trainer and the router service all call it, so they
// cannot drift apart.
#ifndef MOE_MODELS_ROUTING_H_
#define MOE_MODELS_ROUTING_H_

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "models/config.h"
#include "models/packed_matmul.h"

namespace moe {

struct RoutingResult {
  torch::Tensor expert_ids;  // [N, k] int64 flat micro-expert ids; -1 = dropped by capacity
  torch::Tensor weights;     // [N, k] float; renormalized over the top-k; 0 where dropped
  torch::Tensor probs;       // [N, n_experts * m] softmax of the (noisy) gate logits
  torch::Tensor logits;      // [N, n_experts * m] gate logits before softmax (for the z-loss)
  int64_t dropped = 0;       // (token, slot) pairs dropped by capacity
};

// Gate: logits = hidden @ gate^T (+ noise) -> softmax -> top-k (ties go to the lower id) ->
// weights renormalized to sum 1 -> optional capacity: slot 0 of every token first, then slot 1,
// ..., each in token order; a (token, slot) whose expert is full is dropped (weight 0, no
// renormalization of the remaining slots, as in GShard).
// Noise, when policy.noise_std > 0, is a pure function of (noise_seed, layer, token key, expert),
// so the same token is routed the same way whatever batch it travels in.
// REQUIRES: hidden [N, C] float; gate_weight [E*m, C]; token_keys empty or of size N.
// Differentiable in hidden and gate_weight through weights, probs and logits.
RoutingResult RouteTokens(const torch::Tensor& hidden, const torch::Tensor& gate_weight,
                          const RoutingPolicy& policy, int layer,
                          absl::Span<const uint64_t> token_keys);

// A gate ready for inference: its weight ([E*m, C]) packed once (packed_matmul.h), so that a
// token's logits are the same bits whatever batch it is routed in: the router, the
// orchestrator's prediction and the embedded runner batch differently and agree exactly.
class PackedGate {
 public:
  explicit PackedGate(const torch::Tensor& weight);
  const torch::Tensor& weight() const { return weight_; }
  // hidden [N, C] -> [N, E*m] float.
  torch::Tensor Logits(const torch::Tensor& hidden) const;

 private:
  torch::Tensor weight_;
  std::shared_ptr<const PackedMatrix> packed_;  // weight^T; null off the CPU
};

// One PackedGate per weight.
std::vector<PackedGate> MakeGates(const std::vector<torch::Tensor>& weights);

// RouteTokens for inference (no gradients), with the logits from a packed gate.
RoutingResult RouteTokens(const torch::Tensor& hidden, const PackedGate& gate,
                          const RoutingPolicy& policy, int layer,
                          absl::Span<const uint64_t> token_keys);

// The gate of every MoE layer in a checkpoint's state dict (`blocks.{l}.moe.router.gate.weight`),
// contiguous, each [n_experts * m, d_model]: the one place that knows the name. NOT_FOUND names a
// missing tensor, INVALID_ARGUMENT a wrong shape.
absl::StatusOr<std::vector<torch::Tensor>> GateWeights(
    const ModelConfig& config, const std::map<std::string, torch::Tensor>& state);

// Switch/GShard load-balancing loss: n * sum_e f_e * P_e over the flat micro-experts, where f_e is
// the fraction of (token, slot) pairs routed to e and P_e the mean gate probability of e.
torch::Tensor LoadBalancingLoss(const RoutingResult& routing);

// ST-MoE router z-loss: mean over tokens of logsumexp(logits)^2.
torch::Tensor RouterZLoss(const RoutingResult& routing);

// A standard normal draw that depends only on its arguments (SplitMix64 + Box-Muller).
double KeyedGaussian(uint64_t seed, int layer, uint64_t token_key, int expert);

}  // namespace moe

#endif  // MOE_MODELS_ROUTING_H_
