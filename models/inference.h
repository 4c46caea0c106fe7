// The dense part of the model for inference: embeddings, attention over a KV cache, norms and
// the tied LM head. The MoE FFN is not here: the engine hands each layer's ln2 output to a
// MoeExecutor. Thread-compatible: const methods may run concurrently on distinct caches.
#ifndef MOE_MODELS_INFERENCE_H_
#define MOE_MODELS_INFERENCE_H_

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/config.h"
#include "models/kv_cache.h"
#include "models/packed_matmul.h"

namespace moe {

// Positions of a decode step: sequence b sits in cache slot first_slot + b at position pos[b].
struct DecodeBatch {
  int64_t first_slot = 0;     // a micro-batch's first slot
  torch::Tensor pos;          // [B] int64
  std::vector<int64_t> lens;  // [B]: pos + 1, the positions each sequence attends to
  static DecodeBatch Make(const std::vector<int64_t>& positions);
};

class InferenceModel {
 public:
  static absl::StatusOr<InferenceModel> Create(const ModelConfig& config,
                                               const std::map<std::string, torch::Tensor>& state);

  const ModelConfig& config() const { return config_; }

  // tokens, positions [N] int64 -> [N, C]
  torch::Tensor Embed(const torch::Tensor& tokens, const torch::Tensor& positions) const;
  // One sequence's prompt, positions 0..T-1: x [T, C] -> x + attn(ln1(x)); fills the slot.
  torch::Tensor AttendPrefill(int layer, const torch::Tensor& x, KvCache& cache, int slot) const;
  // One new token per sequence: x [B, C] -> x + attn(ln1(x)); writes each token's k, v.
  torch::Tensor AttendDecode(int layer, const torch::Tensor& x, KvCache& cache,
                             const DecodeBatch& batch) const;
  torch::Tensor Ln2(int layer, const torch::Tensor& x) const;
  // [N, C] -> [N, vocab]
  torch::Tensor Logits(const torch::Tensor& x) const;

 private:
  struct Layer {
    torch::Tensor ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b;
    // Packed for decode's few rows (packed_matmul.h), biases included.
    std::shared_ptr<const PackedMatrix> qkv, proj;
  };
  InferenceModel() = default;
  ModelConfig config_;
  torch::Tensor tok_emb_, pos_emb_, lnf_w_, lnf_b_;
  std::shared_ptr<const PackedMatrix> lm_head_;  // the tied LM head, tok_emb^T, packed
  std::vector<Layer> layers_;
};

}  // namespace moe

#endif  // MOE_MODELS_INFERENCE_H_
