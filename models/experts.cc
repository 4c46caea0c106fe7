#include "models/experts.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "models/gelu.h"
#include "models/packed_tensor.h"
#include "models/threads.h"

namespace moe {

torch::Tensor ExpertForward(const torch::Tensor& x, const torch::Tensor& w1,
                            const torch::Tensor& w2, double hidden_dropout) {
  torch::Tensor h = torch::gelu(torch::linear(x, w1));
  if (hidden_dropout > 0) h = torch::dropout(h, hidden_dropout, /*train=*/true);
  return torch::linear(h, w2);
}

DispatchPlan PlanDispatch(const torch::Tensor& expert_ids) {
  DispatchPlan plan;
  plan.n_tokens = expert_ids.size(0);
  plan.top_k = expert_ids.size(1);
  const int64_t slots = plan.n_tokens * plan.top_k;
  const int64_t* ids = expert_ids.data_ptr<int64_t>();
  int64_t max_id = -1;
  for (int64_t s = 0; s < slots; ++s) max_id = std::max(max_id, ids[s]);
  // Counting sort by expert id; tokens stay in ascending order inside each expert.
  std::vector<int64_t> count(max_id + 1, 0);
  for (int64_t s = 0; s < slots; ++s) {
    if (ids[s] >= 0) ++count[ids[s]];
  }
  std::vector<int64_t> first(max_id + 1, 0);
  for (int64_t e = 0; e <= max_id; ++e) {
    if (count[e] == 0) continue;
    first[e] = plan.total_rows;
    plan.total_rows += count[e];
    plan.experts.push_back(e);
    plan.rows.emplace_back();
    plan.rows.back().reserve(count[e]);
  }
  std::vector<int64_t> group(max_id + 1, -1);
  for (size_t g = 0; g < plan.experts.size(); ++g) group[plan.experts[g]] = g;
  plan.inverse = torch::empty({slots}, torch::kInt64);
  int64_t* inv = plan.inverse.data_ptr<int64_t>();
  for (int64_t s = 0; s < slots; ++s) {
    const int64_t e = ids[s];
    if (e < 0) {
      inv[s] = plan.total_rows;  // the zero row
      continue;
    }
    auto& rows = plan.rows[group[e]];
    inv[s] = first[e] + static_cast<int64_t>(rows.size());
    rows.push_back(static_cast<int32_t>(s / plan.top_k));
  }
  return plan;
}

torch::Tensor CombineExpertOutputs(const std::vector<torch::Tensor>& outputs,
                                   const DispatchPlan& plan, const torch::Tensor& weights,
                                   int64_t d_model) {
  const int64_t c = d_model;
  // The loops below unless autograd needs the ops (training) or the tensors are elsewhere: the
  // choice depends on the tensors only, so the embedded and the distributed paths always agree.
  bool grad = weights.requires_grad();
  bool plain = weights.device().is_cpu() && weights.scalar_type() == torch::kFloat;
  for (const torch::Tensor& o : outputs) {
    grad |= o.requires_grad();
    plain &= o.device().is_cpu() && o.scalar_type() == torch::kFloat && o.is_contiguous();
  }
  plain &= !(grad && torch::GradMode::is_enabled());
  if (plain) {
    // Inference on the CPU: the same sums as below (slot order), in one pass without the
    // gathered [N, k, C] copy.
    std::vector<const float*> rows;
    rows.reserve(plan.total_rows);
    for (const torch::Tensor& o : outputs) {
      for (int64_t j = 0; j < o.size(0); ++j) rows.push_back(o.data_ptr<float>() + j * c);
    }
    const torch::Tensor w = weights.contiguous();
    const float* wp = w.data_ptr<float>();
    const int64_t* inverse = plan.inverse.data_ptr<int64_t>();
    torch::Tensor out = torch::zeros({plan.n_tokens, c}, torch::kFloat);
    float* op = out.data_ptr<float>();
    for (int64_t t = 0; t < plan.n_tokens; ++t) {
      float* y = op + t * c;
      for (int64_t s = 0; s < plan.top_k; ++s) {
        const int64_t row = inverse[t * plan.top_k + s];
        if (row >= static_cast<int64_t>(rows.size())) continue;  // dropped: the zero row
        const float ws = wp[t * plan.top_k + s];
        const float* src = rows[row];
        for (int64_t i = 0; i < c; ++i) y[i] += ws * src[i];
      }
    }
    return out;
  }
  std::vector<torch::Tensor> parts = outputs;
  torch::Tensor zero = torch::zeros({1, c}, weights.options());
  parts.push_back(zero);
  torch::Tensor all = torch::cat(parts, 0);  // [total_rows + 1, C]
  torch::Tensor slots = all.index_select(0, plan.inverse.to(all.device()))
                            .view({plan.n_tokens, plan.top_k, c});  // [N, k, C]
  return (slots * weights.unsqueeze(-1)).sum(1);                    // [N, C]
}

absl::StatusOr<ExpertBank> ExpertBank::Build(const ModelConfig& config,
                                             const std::map<std::string, torch::Tensor>& state,
                                             const HostFilter& hosts, torch::Device device) {
  ExpertBank bank(device);
  if (absl::Status s = bank.Add(config, state, hosts); !s.ok()) return s;
  return bank;
}

absl::StatusOr<ExpertBank> ExpertBank::Changed(const ModelConfig& config,
                                               const std::map<std::string, torch::Tensor>& state,
                                               const HostFilter& add,
                                               const HostFilter& drop) const {
  ExpertBank bank = *this;
  for (auto it = bank.routed_.begin(); it != bank.routed_.end();) {
    const auto [layer, flat] = it->first;
    it = drop(layer, flat / config.granularity, false) ? bank.routed_.erase(it) : std::next(it);
  }
  for (auto it = bank.shared_.begin(); it != bank.shared_.end();) {
    it = drop(it->first.first, it->first.second, true) ? bank.shared_.erase(it) : std::next(it);
  }
  if (absl::Status s = bank.Add(config, state, add); !s.ok()) return s;
  return bank;
}

absl::Status ExpertBank::Add(const ModelConfig& config,
                             const std::map<std::string, torch::Tensor>& state,
                             const HostFilter& hosts) {
  auto find = [&](const std::string& name) -> absl::StatusOr<torch::Tensor> {
    auto it = state.find(name);
    if (it == state.end()) return absl::NotFoundError(absl::StrCat("missing tensor ", name));
    return it->second;
  };
  const int dm = config.d_micro();
  for (int l = 0; l < config.n_layers; ++l) {
    for (int e = 0; e < config.n_experts; ++e) {
      if (!hosts(l, e, false) || Hosts(l, e, false, config.granularity)) continue;
      const std::string prefix = absl::StrCat("blocks.", l, ".moe.experts.", e, ".");
      absl::StatusOr<torch::Tensor> w1 = find(prefix + "w1.weight");
      absl::StatusOr<torch::Tensor> w2 = find(prefix + "w2.weight");
      if (!w1.ok()) return w1.status();
      if (!w2.ok()) return w2.status();
      for (int j = 0; j < config.granularity; ++j) {
        routed_[{l, e * config.granularity + j}] =
            MakeWeights(w1->narrow(0, j * dm, dm), w2->narrow(1, j * dm, dm));
      }
    }
    for (int s = 0; s < config.n_shared; ++s) {
      if (!hosts(l, s, true) || Hosts(l, s, true, config.granularity)) continue;
      const std::string prefix = absl::StrCat("blocks.", l, ".moe.shared.", s, ".");
      absl::StatusOr<torch::Tensor> w1 = find(prefix + "w1.weight");
      absl::StatusOr<torch::Tensor> w2 = find(prefix + "w2.weight");
      if (!w1.ok()) return w1.status();
      if (!w2.ok()) return w2.status();
      shared_[{l, s}] = MakeWeights(*w1, *w2);
    }
  }
  return absl::OkStatus();
}

ExpertBank::Weights ExpertBank::MakeWeights(const torch::Tensor& w1,
                                            const torch::Tensor& w2) const {
  Weights w;
  if (device_.is_cpu()) {
    const torch::Tensor a = w1.to(torch::kFloat).t().contiguous();
    const torch::Tensor b = w2.to(torch::kFloat).t().contiguous();
    w.w1p = std::make_shared<const PackedMatrix>(a.data_ptr<float>(), a.size(0), a.size(1));
    w.w2p = std::make_shared<const PackedMatrix>(b.data_ptr<float>(), b.size(0), b.size(1));
  } else {
    w.w1t = w1.t().contiguous().to(device_);
    w.w2t = w2.t().contiguous().to(device_);
  }
  return w;
}

const ExpertBank::Weights* ExpertBank::Routed(int layer, int flat_id) const {
  auto it = routed_.find({layer, flat_id});
  return it == routed_.end() ? nullptr : &it->second;
}

const ExpertBank::Weights* ExpertBank::Shared(int layer, int shared_id) const {
  auto it = shared_.find({layer, shared_id});
  return it == shared_.end() ? nullptr : &it->second;
}

torch::Tensor ExpertBank::Run(int layer, int id, bool shared, const torch::Tensor& x,
                              absl::Span<const int32_t> rows) const {
  UseIntraOpThreadsOnThisThread();  // callers include gRPC's threads (an expert pool)
  const Weights* w = shared ? Shared(layer, id) : Routed(layer, id);
  if (w->w1p != nullptr) return RunPacked(*w, x, rows);
  torch::Tensor input = x;
  // Rows 0..n-1 in order (a decode step's single token, a shared expert) need no gather.
  bool all_rows = static_cast<int64_t>(rows.size()) == x.size(0);
  for (size_t i = 0; all_rows && i < rows.size(); ++i)
    all_rows = rows[i] == static_cast<int32_t>(i);
  if (!rows.empty() && !all_rows) {
    torch::Tensor index = torch::from_blob(const_cast<int32_t*>(rows.data()),
                                           {static_cast<int64_t>(rows.size())}, torch::kInt32)
                              .to(torch::TensorOptions().dtype(torch::kInt64).device(x.device()));
    input = x.index_select(0, index);
  }
  return torch::matmul(torch::gelu(torch::matmul(input, w->w1t)), w->w2t);
}

torch::Tensor ExpertBank::RunPacked(const Weights& w, const torch::Tensor& x,
                                    absl::Span<const int32_t> rows) {
  torch::Tensor input = x;
  if (!rows.empty()) {
    const torch::Tensor in = x.to(torch::kFloat).contiguous();
    const int64_t c = in.size(1), n = static_cast<int64_t>(rows.size());
    input = torch::empty({n, c}, torch::kFloat);
    const float* src = in.data_ptr<float>();
    float* dst = input.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(dst + i * c, src + static_cast<int64_t>(rows[i]) * c, c * sizeof(float));
    }
  }
  torch::Tensor hidden = Multiply(*w.w1p, input);
  GeluInPlace(hidden.data_ptr<float>(), hidden.numel());
  return Multiply(*w.w2p, hidden);
}

}  // namespace moe
