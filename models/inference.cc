#include "models/inference.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "models/decode_attention.h"
#include "models/layer_norm.h"
#include "models/packed_tensor.h"
#include "models/transformer.h"

namespace moe {

namespace {

// w [out, in] as stored by nn.Linear (x @ w^T + b), packed for x @ w^T.
std::shared_ptr<const PackedMatrix> Pack(const torch::Tensor& w, const torch::Tensor& bias) {
  torch::Tensor wt = w.to(torch::kFloat).t().contiguous();
  torch::Tensor b = bias.defined() ? bias.to(torch::kFloat).contiguous() : torch::Tensor();
  return std::make_shared<const PackedMatrix>(wt.data_ptr<float>(), wt.size(0), wt.size(1),
                                              b.defined() ? b.data_ptr<float>() : nullptr);
}

// layer_norm over each row of x [rows, C] (decode's few rows: layer_norm.h).
torch::Tensor Norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  const torch::Tensor in = x.to(torch::kFloat).contiguous();
  torch::Tensor out = torch::empty_like(in);
  LayerNormRows(in.data_ptr<float>(), in.size(0), in.size(1), weight.data_ptr<float>(),
                bias.data_ptr<float>(), 1e-5f, out.data_ptr<float>());
  return out;
}

}  // namespace

DecodeBatch DecodeBatch::Make(const std::vector<int64_t>& positions) {
  DecodeBatch b;
  b.pos = torch::tensor(positions, torch::kInt64);
  b.lens.reserve(positions.size());
  for (int64_t p : positions) b.lens.push_back(p + 1);
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
    return it->second.to(torch::kFloat).contiguous();
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
                              /*qkv=*/nullptr, /*proj=*/nullptr});
  }
  if (!missing.ok()) return missing;
  for (Layer& l : m.layers_) {
    l.qkv = Pack(l.qkv_w, l.qkv_b);
    l.proj = Pack(l.proj_w, l.proj_b);
  }
  m.lm_head_ = Pack(m.tok_emb_, torch::Tensor());
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
  // k, v [1, H, T, D] -> cache slot positions [0, T) (keys transposed: [H, D, T])
  cache.keys(layer)[slot].narrow(2, 0, t).copy_(a.k[0].transpose(-1, -2));
  cache.values(layer)[slot].narrow(1, 0, t).copy_(a.v[0]);
  return x + a.out[0];
}

torch::Tensor InferenceModel::AttendDecode(int layer, const torch::Tensor& x, KvCache& cache,
                                           const DecodeBatch& batch) const {
  const Layer& w = layers_[layer];
  const int64_t b = x.size(0), c = config_.d_model, h = config_.n_heads, d = c / h;
  torch::Tensor u = Norm(x, w.ln1_w, w.ln1_b);
  torch::Tensor qkv = Multiply(*w.qkv, u).view({b, 3, h, d});  // [B, 3, H, D]
  // The cache (kv_cache.h, contiguous): this step's k and v go to each sequence's position, then
  // each sequence attends to its own positions (q: qkv's first third).
  torch::Tensor& keys = cache.keys(layer);
  torch::Tensor& values = cache.values(layer);
  {
    const float* src = qkv.data_ptr<float>();
    float* kdst = keys.data_ptr<float>();
    float* vdst = values.data_ptr<float>();
    for (int64_t i = 0; i < b; ++i) {
      for (int64_t j = 0; j < h; ++j) {
        const int64_t head = (batch.first_slot + i) * keys.stride(0) + j * keys.stride(1);
        const int64_t pos = batch.lens[i] - 1;
        const float* k = src + i * 3 * c + c + j * d;
        for (int64_t e = 0; e < d; ++e) kdst[head + e * keys.stride(2) + pos] = k[e];
        std::memcpy(vdst + head + pos * d, src + i * 3 * c + 2 * c + j * d, d * sizeof(float));
      }
    }
  }
  torch::Tensor y = torch::empty({b, c}, torch::kFloat);
  DecodeAttentionArgs args;
  args.q = qkv.data_ptr<float>();
  args.q_stride = 3 * c;
  args.keys = keys.data_ptr<float>() + batch.first_slot * keys.stride(0);
  args.values = values.data_ptr<float>() + batch.first_slot * values.stride(0);
  args.seq_stride = keys.stride(0);
  args.head_stride = keys.stride(1);
  args.key_stride = keys.stride(2);
  args.len = batch.lens.data();
  args.b = b;
  args.h = h;
  args.d = d;
  args.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  args.out = y.data_ptr<float>();
  DecodeAttention(args);
  return x + Multiply(*w.proj, y);
}

torch::Tensor InferenceModel::Ln2(int layer, const torch::Tensor& x) const {
  const Layer& w = layers_[layer];
  return Norm(x, w.ln2_w, w.ln2_b);
}

torch::Tensor InferenceModel::Logits(const torch::Tensor& x) const {
  return Multiply(*lm_head_, Norm(x, lnf_w_, lnf_b_));
}

}  // namespace moe
