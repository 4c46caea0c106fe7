#include "models/experts.h"

#include <gtest/gtest.h>

#include <thread>

#include "models/checkpoint.h"
#include "models/moe_executor.h"
#include "models/routing.h"
#include "models/test_util.h"
#include "models/threads.h"

namespace moe {
namespace {

// Every expert on every token, then masked to the top-k: what sparse dispatch must equal.
torch::Tensor DenseReference(const ModelConfig& c, const std::map<std::string, torch::Tensor>& s,
                             int layer, const torch::Tensor& x, const RoutingPolicy& policy) {
  const std::string p = "blocks." + std::to_string(layer) + ".moe.";
  RoutingResult r = RouteTokens(x, s.at(p + "router.gate.weight"), policy, layer, {});
  const int n = x.size(0), dm = c.d_micro();
  torch::Tensor mask = torch::zeros({n, c.n_routed()});
  for (int t = 0; t < n; ++t) {
    for (int j = 0; j < policy.top_k; ++j) {
      mask[t][r.expert_ids[t][j].item<int64_t>()] += r.weights[t][j];
    }
  }
  torch::Tensor out = torch::zeros_like(x);
  for (int e = 0; e < c.n_routed(); ++e) {
    const std::string ep = p + "experts." + std::to_string(e / c.granularity) + ".";
    const int j = e % c.granularity;
    torch::Tensor y = ExpertForward(x, s.at(ep + "w1.weight").narrow(0, j * dm, dm),
                                    s.at(ep + "w2.weight").narrow(1, j * dm, dm));
    out += y * mask.select(1, e).unsqueeze(1);
  }
  for (int sh = 0; sh < c.n_shared; ++sh) {
    const std::string sp = p + "shared." + std::to_string(sh) + ".";
    out += ExpertForward(x, s.at(sp + "w1.weight"), s.at(sp + "w2.weight"));
  }
  return out;
}

TEST(ExpertsTest, SparseDispatchEqualsDenseMaskedComputation) {
  ModelConfig c = testing::TinyConfig();  // 4 experts x m=2, top-3, one shared expert
  absl::StatusOr<Checkpoint> ckpt = RandomCheckpoint(c, 11);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto exec = LocalMoeExecutor::Create(c, ckpt->state);
  ASSERT_TRUE(exec.ok()) << exec.status();
  torch::manual_seed(1);
  torch::Tensor x = torch::randn({37, c.d_model});
  for (int layer = 0; layer < c.n_layers; ++layer) {
    absl::StatusOr<MoeLayerOutput> out = (*exec)->Forward(layer, x, {}, false);
    ASSERT_TRUE(out.ok()) << out.status();
    torch::Tensor ref = DenseReference(c, ckpt->state, layer, x, (*exec)->policy());
    EXPECT_TRUE(torch::allclose(out->output, ref, 1e-5, 1e-6))
        << "max diff " << (out->output - ref).abs().max().item<float>();
  }
}

TEST(ExpertsTest, ExpertsOnlySeeTheirTokens) {
  // Tokens 0 and 2 go to expert 1, token 1 to expert 0; expert 2 gets nothing.
  torch::Tensor ids = torch::tensor({{1, 0}, {0, -1}, {1, 2}}, torch::kInt64);
  DispatchPlan plan = PlanDispatch(ids);
  ASSERT_EQ(plan.experts, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(plan.rows[0], (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(plan.rows[1], (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(plan.rows[2], (std::vector<int32_t>{2}));
  EXPECT_EQ(plan.total_rows, 5);
  // Slot (1, 1) was dropped: it reads the zero row.
  EXPECT_EQ(plan.inverse[3].item<int64_t>(), 5);
}

TEST(ExpertsTest, CombineAppliesWeightsPerSlot) {
  torch::Tensor ids = torch::tensor({{1, 0}}, torch::kInt64);
  DispatchPlan plan = PlanDispatch(ids);
  std::vector<torch::Tensor> outputs = {torch::full({1, 2}, 10.f), torch::full({1, 2}, 1.f)};
  torch::Tensor y = CombineExpertOutputs(outputs, plan, torch::tensor({{0.75f, 0.25f}}), 2);
  // slot 0 -> expert 1 (1.0) * 0.75 + slot 1 -> expert 0 (10.0) * 0.25 = 3.25
  EXPECT_FLOAT_EQ(y[0][0].item<float>(), 3.25f);
}

TEST(ExpertsTest, BankKeepsOnlyHostedExperts) {
  ModelConfig c = testing::TinyConfig();
  absl::StatusOr<Checkpoint> ckpt = RandomCheckpoint(c, 2);
  ASSERT_TRUE(ckpt.ok());
  auto bank = ExpertBank::Build(
      c, ckpt->state, [](int layer, int e, bool shared) { return layer == 1 && !shared && e == 3; },
      torch::kCPU);
  ASSERT_TRUE(bank.ok()) << bank.status();
  EXPECT_NE(bank->Routed(1, 6), nullptr);  // expert 3, micro 0
  EXPECT_NE(bank->Routed(1, 7), nullptr);  // expert 3, micro 1
  EXPECT_EQ(bank->Routed(1, 5), nullptr);
  EXPECT_EQ(bank->Routed(0, 6), nullptr);
  EXPECT_EQ(bank->Shared(1, 0), nullptr);
  ASSERT_NE(bank->Routed(1, 6)->w1p, nullptr);  // a CPU bank: packed
  EXPECT_EQ(bank->Routed(1, 6)->w1p->k(), c.d_model);
  EXPECT_EQ(bank->Routed(1, 6)->w1p->n(), c.d_micro());
}

// An expert pool runs experts on gRPC's threads, which start with OpenMP's default thread count;
// Run must apply the process's count (oneDNN's gelu reads OpenMP's per-thread value).
TEST(ExpertsTest, RunUsesTheProcessIntraOpThreadCountOnAnyThread) {
  ModelConfig c = testing::TinyConfig();
  absl::StatusOr<Checkpoint> ckpt = RandomCheckpoint(c, 2);
  ASSERT_TRUE(ckpt.ok());
  auto bank = ExpertBank::Build(
      c, ckpt->state, [](int, int, bool) { return true; }, torch::kCPU);
  ASSERT_TRUE(bank.ok()) << bank.status();
  const int before = IntraOpThreadsOnThisThread();
  const int wanted = static_cast<int>(std::thread::hardware_concurrency()) + 1;  // no default
  SetIntraOpThreads(wanted);
  const torch::Tensor x = torch::randn({2, c.d_model});
  int seen = 0;
  std::thread([&] {
    bank->Run(0, 0, false, x, {0, 1});  // all rows in order: no gather before the FFN
    seen = IntraOpThreadsOnThisThread();
  }).join();
  SetIntraOpThreads(before);
  EXPECT_EQ(seen, wanted);
}

}  // namespace
}  // namespace moe
