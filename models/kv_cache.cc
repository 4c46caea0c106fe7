#include "models/kv_cache.h"

namespace moe {

KvCache::KvCache(const ModelConfig& c, int max_slots) : max_slots_(max_slots) {
  for (int l = 0; l < c.n_layers; ++l) {
    k_.push_back(torch::zeros({max_slots, c.n_heads, c.head_dim(), c.context_length}));
    v_.push_back(torch::zeros({max_slots, c.n_heads, c.context_length, c.head_dim()}));
  }
}

void KvCache::MoveSlot(int from, int to, int length) {
  if (from == to || length <= 0) return;
  for (size_t l = 0; l < k_.size(); ++l) {
    k_[l][to].narrow(2, 0, length).copy_(k_[l][from].narrow(2, 0, length));
    v_[l][to].narrow(1, 0, length).copy_(v_[l][from].narrow(1, 0, length));
  }
}

}  // namespace moe
