// Preallocated key/value cache for a batch of sequences. Live sequences occupy slots
// [0, batch) so that a decode step reads the cache through views, never copies.
// Not thread-safe; owned by one engine.
#ifndef MOE_MODELS_KV_CACHE_H_
#define MOE_MODELS_KV_CACHE_H_

#include <torch/torch.h>

#include <vector>

#include "models/config.h"

namespace moe {

class KvCache {
 public:
  KvCache(const ModelConfig& config, int max_slots);

  // Per layer: keys [max_slots, H, D, context] (transposed, so that decode's scores of
  // consecutive positions are one vector: decode_attention.h), values [max_slots, H, context, D].
  torch::Tensor& keys(int layer) { return k_[layer]; }
  torch::Tensor& values(int layer) { return v_[layer]; }
  int max_slots() const { return max_slots_; }

  // Copies slot `from`'s first `length` positions of every layer into slot `to`.
  void MoveSlot(int from, int to, int length);

 private:
  int max_slots_;
  std::vector<torch::Tensor> k_, v_;
};

}  // namespace moe

#endif  // MOE_MODELS_KV_CACHE_H_
