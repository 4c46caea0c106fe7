#include "models/transformer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/experts.h"

namespace moe {

namespace nn = torch::nn;

ExpertImpl::ExpertImpl(int d_model, int d_ff) {
  w1 = register_module("w1", nn::Linear(nn::LinearOptions(d_model, d_ff).bias(false)));
  w2 = register_module("w2", nn::Linear(nn::LinearOptions(d_ff, d_model).bias(false)));
}

GateImpl::GateImpl(int d_model, int n_routed) {
  gate = register_module("gate", nn::Linear(nn::LinearOptions(d_model, n_routed).bias(false)));
}

MoeFfnImpl::MoeFfnImpl(const ModelConfig& c) {
  router = register_module("router", Gate(c.d_model, c.n_routed()));
  experts = register_module("experts", nn::ModuleList());
  for (int e = 0; e < c.n_experts; ++e) experts->push_back(Expert(c.d_model, c.d_ff));
  shared = register_module("shared", nn::ModuleList());
  for (int s = 0; s < c.n_shared; ++s) shared->push_back(Expert(c.d_model, c.d_ff));
}

AttentionImpl::AttentionImpl(const ModelConfig& c) {
  qkv = register_module("qkv", nn::Linear(c.d_model, 3 * c.d_model));
  proj = register_module("proj", nn::Linear(c.d_model, c.d_model));
}

BlockImpl::BlockImpl(const ModelConfig& c) {
  ln1 = register_module("ln1", nn::LayerNorm(nn::LayerNormOptions({c.d_model})));
  attn = register_module("attn", Attention(c));
  ln2 = register_module("ln2", nn::LayerNorm(nn::LayerNormOptions({c.d_model})));
  moe = register_module("moe", MoeFfn(c));
}

MoeTransformerImpl::MoeTransformerImpl(const ModelConfig& c) : config(c) {
  tok_emb = register_module("tok_emb", nn::Embedding(c.vocab_size, c.d_model));
  pos_emb = register_module("pos_emb", nn::Embedding(c.context_length, c.d_model));
  blocks = register_module("blocks", nn::ModuleList());
  for (int l = 0; l < c.n_layers; ++l) blocks->push_back(Block(c));
  ln_f = register_module("ln_f", nn::LayerNorm(nn::LayerNormOptions({c.d_model})));
}

AttentionOutput CausalSelfAttention(const torch::Tensor& x, const torch::Tensor& qkv_w,
                                    const torch::Tensor& qkv_b, const torch::Tensor& proj_w,
                                    const torch::Tensor& proj_b, int n_heads) {
  const int64_t b = x.size(0), t = x.size(1), c = x.size(2), d = c / n_heads;
  // [B, T, 3C] -> [3, B, H, T, D]
  torch::Tensor qkv =
      torch::linear(x, qkv_w, qkv_b).view({b, t, 3, n_heads, d}).permute({2, 0, 3, 1, 4});
  torch::Tensor q = qkv[0], k = qkv[1], v = qkv[2];
  torch::Tensor att = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(d)));
  torch::Tensor mask = torch::ones({t, t}, torch::dtype(torch::kBool).device(x.device())).triu(1);
  att = torch::softmax(att.masked_fill(mask, -std::numeric_limits<float>::infinity()), -1);
  torch::Tensor y = torch::matmul(att, v).transpose(1, 2).reshape({b, t, c});  // [B, T, C]
  return {torch::linear(y, proj_w, proj_b), k, v};
}

torch::Tensor MoeFfnForward(MoeFfnImpl& moe, const ModelConfig& config, const torch::Tensor& x,
                            const RoutingPolicy& policy, int layer, RoutingResult* routing,
                            double hidden_dropout) {
  RoutingResult r = RouteTokens(x, moe.router->gate->weight, policy, layer, {});
  DispatchPlan plan = PlanDispatch(r.expert_ids.to(torch::kCPU));
  const int m = config.granularity, dm = config.d_micro();
  std::vector<torch::Tensor> outputs;
  outputs.reserve(plan.experts.size());
  for (size_t g = 0; g < plan.experts.size(); ++g) {
    const int id = static_cast<int>(plan.experts[g]);
    auto* expert = moe.experts[id / m]->as<ExpertImpl>();
    torch::Tensor w1 = expert->w1->weight.narrow(0, (id % m) * dm, dm);
    torch::Tensor w2 = expert->w2->weight.narrow(1, (id % m) * dm, dm);
    torch::Tensor rows =
        torch::from_blob(plan.rows[g].data(), {static_cast<int64_t>(plan.rows[g].size())},
                         torch::kInt32)
            .to(torch::TensorOptions().dtype(torch::kInt64).device(x.device()));
    outputs.push_back(ExpertForward(x.index_select(0, rows), w1, w2, hidden_dropout));
  }
  torch::Tensor y = CombineExpertOutputs(outputs, plan, r.weights, config.d_model);
  for (int s = 0; s < config.n_shared; ++s) {
    auto* expert = moe.shared[s]->as<ExpertImpl>();
    y = y + ExpertForward(x, expert->w1->weight, expert->w2->weight, hidden_dropout);
  }
  if (routing != nullptr) *routing = std::move(r);
  return y;
}

torch::Tensor MoeTransformerImpl::forward(const torch::Tensor& idx, const RoutingPolicy& policy,
                                          ForwardStats* stats) {
  const int64_t b = idx.size(0), t = idx.size(1), c = config.d_model;
  torch::Tensor pos = torch::arange(t, torch::dtype(torch::kInt64).device(idx.device()));
  auto drop = [this](const torch::Tensor& t) {
    return dropout > 0 && is_training() ? torch::dropout(t, dropout, /*train=*/true) : t;
  };
  torch::Tensor x = drop(tok_emb(idx) + pos_emb(pos));  // [B, T, C]
  std::vector<torch::Tensor> aux, z;
  for (int l = 0; l < config.n_layers; ++l) {
    auto* blk = blocks[l]->as<BlockImpl>();
    auto& attn = *blk->attn;
    x = x + drop(CausalSelfAttention(blk->ln1(x), attn.qkv->weight, attn.qkv->bias,
                                     attn.proj->weight, attn.proj->bias, config.n_heads)
                     .out);
    RoutingResult r;
    torch::Tensor u = blk->ln2(x).reshape({b * t, c});
    const double hidden_dropout = is_training() ? expert_dropout : 0.0;
    x = x +
        drop(MoeFfnForward(*blk->moe, config, u, policy, l, &r, hidden_dropout).view({b, t, c}));
    if (stats != nullptr) {
      aux.push_back(LoadBalancingLoss(r));
      z.push_back(RouterZLoss(r));
      stats->expert_ids.push_back(r.expert_ids.to(torch::kCPU));
      torch::Tensor ids = r.expert_ids.reshape({-1});
      stats->expert_counts.push_back(
          torch::bincount(ids.masked_select(ids.ge(0)), {}, config.n_routed()).to(torch::kCPU));
    }
  }
  if (stats != nullptr) {
    stats->aux_loss = torch::stack(aux).mean();
    stats->z_loss = torch::stack(z).mean();
  }
  return torch::linear(ln_f(x), tok_emb->weight);  // tied LM head
}

void MoeTransformerImpl::RandomInit(uint64_t seed) {
  torch::NoGradGuard no_grad;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const double residual_std = 0.02 / std::sqrt(2.0 * config.n_layers);
  for (auto& item : named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    torch::Tensor p = item.value();
    torch::Tensor fresh = torch::empty(p.sizes(), torch::kFloat);
    auto ends_with = [&](const char* s) {
      const std::string suffix(s);
      return name.size() >= suffix.size() &&
             name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (name.find(".ln") != std::string::npos || name.rfind("ln_f", 0) == 0) {
      fresh.fill_(ends_with("weight") ? 1.0 : 0.0);
    } else if (ends_with("bias")) {
      fresh.zero_();
    } else if (ends_with("proj.weight") || ends_with("w2.weight")) {
      fresh.normal_(0, residual_std, gen);
    } else {
      fresh.normal_(0, 0.02, gen);
    }
    p.copy_(fresh);
  }
}

std::map<std::string, torch::Tensor> StateDict(MoeTransformerImpl& model) {
  std::map<std::string, torch::Tensor> out;
  for (auto& item : model.named_parameters(/*recurse=*/true)) {
    out[item.key()] = item.value().detach();
  }
  return out;
}

absl::Status LoadStateDict(MoeTransformerImpl& model,
                           const std::map<std::string, torch::Tensor>& state) {
  torch::NoGradGuard no_grad;
  std::vector<std::string> missing, wrong;
  for (auto& item : model.named_parameters(/*recurse=*/true)) {
    auto it = state.find(item.key());
    if (it == state.end()) {
      missing.push_back(item.key());
    } else if (it->second.sizes() != item.value().sizes()) {
      wrong.push_back(absl::StrCat(item.key(), " has shape [",
                                   absl::StrJoin(it->second.sizes(), ", "), "], expected [",
                                   absl::StrJoin(item.value().sizes(), ", "), "]"));
    } else {
      item.value().copy_(it->second.to(item.value().dtype()));
    }
  }
  if (!missing.empty() || !wrong.empty()) {
    std::string msg;
    if (!missing.empty()) absl::StrAppend(&msg, "missing tensors: ", absl::StrJoin(missing, ", "));
    if (!wrong.empty()) {
      absl::StrAppend(&msg, msg.empty() ? "" : "; ", "wrong shapes: ", absl::StrJoin(wrong, "; "));
    }
    return absl::InvalidArgumentError(msg);
  }
  return absl::OkStatus();
}

std::vector<std::pair<std::string, std::vector<int64_t>>> ExpectedTensors(
    const ModelConfig& config) {
  MoeTransformerImpl model(config);
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (auto& item : model.named_parameters(/*recurse=*/true)) {
    out.emplace_back(item.key(), item.value().sizes().vec());
  }
  return out;
}

}  // namespace moe
