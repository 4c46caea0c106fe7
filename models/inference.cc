#include "models/inference.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "models/transformer.h"

namespace moe {

using torch::indexing::Slice;

DecodeBatch DecodeBatch::Make(const std::vector<int64_t>& positions) {
  DecodeBatch b;
  const int64_t n = static_cast<int64_t>(positions.size());
  b.pos = torch::tensor(positions, torch::kInt64);
  int64_t lo = positions[0], hi = positions[0];
  for (int64_t p : positions) lo = std::min(lo, p), hi = std::max(hi, p);
  b.max_len = hi + 1;
  if (lo != hi) {
    // Sequence b may attend to positions 0..pos[b].
    torch::Tensor j = torch::arange(b.max_len, torch::kInt64).view({1, b.max_len});
    b.mask = j.gt(b.pos.view({n, 1})).view({n, 1, 1, b.max_len});
  }
  return b;
}

absl::StatusOr<InferenceModel> InferenceModel::Create(
    const ModelConfig& config, const std::map<std::string, torch::Tensor>& state) {
  InferenceModel m;
  m.config_ = config;
  absl::Status missing;
  auto get = [&](const std::string& name) {
    auto it = state.find(name);
    if (it == state.end()) {
      missing.Update(absl::NotFoundError(absl::StrCat("missing tensor ", name)));
      return torch::Tensor();
    }
    return it->second.contiguous();
  };
  m.tok_emb_ = get("tok_emb.weight");
  m.pos_emb_ = get("pos_emb.weight");
  m.lnf_w_ = get("ln_f.weight");
  m.lnf_b_ = get("ln_f.bias");
  for (int l = 0; l < config.n_layers; ++l) {
    const std::string p = absl::StrCat("blocks.", l, ".");
    m.layers_.push_back(Layer{get(p + "ln1.weight"), get(p + "ln1.bias"),
                              get(p + "attn.qkv.weight"), get(p + "attn.qkv.bias"),
                              get(p + "attn.proj.weight"), get(p + "attn.proj.bias"),
                              get(p + "ln2.weight"), get(p + "ln2.bias"),
                              /*qkv_wt=*/torch::Tensor(), /*proj_wt=*/torch::Tensor()});
  }
  if (!missing.ok()) return missing;
  for (Layer& l : m.layers_) {
    l.qkv_wt = l.qkv_w.t().contiguous();
    l.proj_wt = l.proj_w.t().contiguous();
  }
  m.tok_emb_t_ = m.tok_emb_.t().contiguous();
  return m;
}

torch::Tensor InferenceModel::Embed(const torch::Tensor& tokens,
                                    const torch::Tensor& positions) const {
  return tok_emb_.index_select(0, tokens) + pos_emb_.index_select(0, positions);
}

torch::Tensor InferenceModel::AttendPrefill(int layer, const torch::Tensor& x, KvCache& cache,
                                            int slot) const {
  const Layer& w = layers_[layer];
  const int64_t t = x.size(0);
  torch::Tensor u = torch::layer_norm(x, {config_.d_model}, w.ln1_w, w.ln1_b);
  AttentionOutput a =
      CausalSelfAttention(u.unsqueeze(0), w.qkv_w, w.qkv_b, w.proj_w, w.proj_b, config_.n_heads);
  // k, v [1, H, T, D] -> cache slot positions [0, T)
  cache.keys(layer)[slot].narrow(1, 0, t).copy_(a.k[0]);
  cache.values(layer)[slot].narrow(1, 0, t).copy_(a.v[0]);
  return x + a.out[0];
}

torch::Tensor InferenceModel::AttendDecode(int layer, const torch::Tensor& x, KvCache& cache,
                                           const DecodeBatch& batch) const {
  const Layer& w = layers_[layer];
  const int64_t b = x.size(0), c = config_.d_model, h = config_.n_heads, d = c / h;
  torch::Tensor u = torch::layer_norm(x, {c}, w.ln1_w, w.ln1_b);
  torch::Tensor qkv = torch::addmm(w.qkv_b, u, w.qkv_wt).view({b, 3, h, d});  // [B, 3, H, D]
  torch::Tensor q = qkv.select(1, 0), k = qkv.select(1, 1), v = qkv.select(1, 2);
  torch::Tensor slots = torch::arange(batch.first_slot, batch.first_slot + b, torch::kInt64);
  cache.keys(layer).index_put_({slots, Slice(), batch.pos}, k);
  cache.values(layer).index_put_({slots, Slice(), batch.pos}, v);
  // Views of the live part of the cache: [B, H, L, D]
  torch::Tensor keys = cache.keys(layer).narrow(0, batch.first_slot, b).narrow(2, 0, batch.max_len);
  torch::Tensor values =
      cache.values(layer).narrow(0, batch.first_slot, b).narrow(2, 0, batch.max_len);
  torch::Tensor att = torch::matmul(q.unsqueeze(2), keys.transpose(-2, -1)) *
                      (1.0 / std::sqrt(static_cast<double>(d)));  // [B, H, 1, L]
  if (batch.mask.defined()) {
    att = att.masked_fill(batch.mask, -std::numeric_limits<float>::infinity());
  }
  att = torch::softmax(att, -1);
  // A weighted sum over positions: for one query row per head this is about twice as fast as
  // the equivalent batched matmul, which packs the cache into GEMM panels first.
  torch::Tensor y = (att.transpose(-1, -2) * values).sum(-2).view({b, c});  // [B, H, D] -> [B, C]
  return x + torch::addmm(w.proj_b, y, w.proj_wt);
}

torch::Tensor InferenceModel::Ln2(int layer, const torch::Tensor& x) const {
  const Layer& w = layers_[layer];
  return torch::layer_norm(x, {config_.d_model}, w.ln2_w, w.ln2_b);
}

torch::Tensor InferenceModel::Logits(const torch::Tensor& x) const {
  return torch::matmul(torch::layer_norm(x, {config_.d_model}, lnf_w_, lnf_b_), tok_emb_t_);
}

}  // namespace moe
