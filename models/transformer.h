// The MoE transformer as a torch::nn::Module whose structure yields the checkpoint's tensor
// names (tok_emb.weight, blocks.{l}.attn.qkv.weight, blocks.{l}.moe.experts.{e}.w1.weight, ...).
// Used for training and as the full-recompute reference; inference goes through InferenceModel.
#ifndef MOE_MODELS_TRANSFORMER_H_
#define MOE_MODELS_TRANSFORMER_H_

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "models/config.h"
#include "models/routing.h"

namespace moe {

struct ExpertImpl : torch::nn::Module {
  ExpertImpl(int d_model, int d_ff);
  torch::nn::Linear w1{nullptr}, w2{nullptr};  // no biases: micro-experts split them exactly
};
TORCH_MODULE(Expert);

struct GateImpl : torch::nn::Module {
  GateImpl(int d_model, int n_routed);
  torch::nn::Linear gate{nullptr};
};
TORCH_MODULE(Gate);

struct MoeFfnImpl : torch::nn::Module {
  explicit MoeFfnImpl(const ModelConfig& config);
  Gate router{nullptr};
  torch::nn::ModuleList experts{nullptr};
  torch::nn::ModuleList shared{nullptr};
};
TORCH_MODULE(MoeFfn);

struct AttentionImpl : torch::nn::Module {
  explicit AttentionImpl(const ModelConfig& config);
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(Attention);

struct BlockImpl : torch::nn::Module {
  explicit BlockImpl(const ModelConfig& config);
  torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
  Attention attn{nullptr};
  MoeFfn moe{nullptr};
};
TORCH_MODULE(Block);

// What a full forward pass returns besides the logits.
struct ForwardStats {
  torch::Tensor aux_loss;                    // mean over layers of the load-balancing loss
  torch::Tensor z_loss;                      // mean over layers of the router z-loss
  std::vector<torch::Tensor> expert_counts;  // per layer: [n_routed] int64 routed (token, slot)s
  std::vector<torch::Tensor> expert_ids;     // per layer: [B*T, k] int64 (CPU)
};

// Not thread-safe for training; concurrent inference-mode forwards are fine.
struct MoeTransformerImpl : torch::nn::Module {
  explicit MoeTransformerImpl(const ModelConfig& config);

  // idx [B, T] int64 -> logits [B, T, vocab]. Full causal attention, sparse experts.
  torch::Tensor forward(const torch::Tensor& idx, const RoutingPolicy& policy,
                        ForwardStats* stats = nullptr);

  // N(0, 0.02) linears and embeddings (residual projections scaled by 1/sqrt(2 n_layers)),
  // LayerNorms at identity; deterministic for a seed.
  void RandomInit(uint64_t seed);

  ModelConfig config;
  // Dropout probability on the embeddings and on each residual branch (attention, MoE FFN),
  // applied only in training mode. A training hyperparameter, not part of the checkpoint.
  double dropout = 0;
  // Dropout on the hidden activations inside every expert (and shared expert), training only:
  // the experts hold most of the parameters, and overfit first on small data.
  double expert_dropout = 0;
  torch::nn::Embedding tok_emb{nullptr}, pos_emb{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};
};
TORCH_MODULE(MoeTransformer);

// Causal self-attention over a whole sequence: x [B, T, C] -> ([B, T, C], k, v [B, H, T, D]).
struct AttentionOutput {
  torch::Tensor out, k, v;
};
AttentionOutput CausalSelfAttention(const torch::Tensor& x, const torch::Tensor& qkv_w,
                                    const torch::Tensor& qkv_b, const torch::Tensor& proj_w,
                                    const torch::Tensor& proj_b, int n_heads);

// Sparse MoE FFN straight from the module's parameters (differentiable): x [N, C] -> [N, C].
// `hidden_dropout` goes to ExpertForward (training only).
torch::Tensor MoeFfnForward(MoeFfnImpl& moe, const ModelConfig& config, const torch::Tensor& x,
                            const RoutingPolicy& policy, int layer, RoutingResult* routing,
                            double hidden_dropout = 0);

// name -> tensor for every parameter (the checkpoint's contents), detached.
std::map<std::string, torch::Tensor> StateDict(MoeTransformerImpl& model);

// Copies tensors into the model's parameters; every parameter must be present with its shape.
absl::Status LoadStateDict(MoeTransformerImpl& model,
                           const std::map<std::string, torch::Tensor>& state);

// Every tensor name the config implies, with its shape, in module order.
std::vector<std::pair<std::string, std::vector<int64_t>>> ExpectedTensors(
    const ModelConfig& config);

}  // namespace moe

#endif  // MOE_MODELS_TRANSFORMER_H_
