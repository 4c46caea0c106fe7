#include "models/routing.h"

#include <gtest/gtest.h>

#include <cmath>

namespace moe {
namespace {

// With an identity gate, the hidden states are the logits.
torch::Tensor Identity(int n) { return torch::eye(n); }

RoutingPolicy Policy(int k) {
  RoutingPolicy p;
  p.top_k = k;
  return p;
}

TEST(RoutingTest, TopTwoWeightsAreRenormalizedProbabilities) {
  // softmax(log p) = p = [0.1, 0.2, 0.3, 0.4]: top-2 = {3, 2}, weights 0.4/0.7 and 0.3/0.7.
  torch::Tensor h =
      torch::tensor({{std::log(0.1f), std::log(0.2f), std::log(0.3f), std::log(0.4f)}});
  RoutingResult r = RouteTokens(h, Identity(4), Policy(2), 0, {});
  EXPECT_EQ(r.expert_ids[0][0].item<int64_t>(), 3);
  EXPECT_EQ(r.expert_ids[0][1].item<int64_t>(), 2);
  EXPECT_NEAR(r.weights[0][0].item<float>(), 0.4f / 0.7f, 1e-6);
  EXPECT_NEAR(r.weights[0][1].item<float>(), 0.3f / 0.7f, 1e-6);
  EXPECT_NEAR(r.probs[0][0].item<float>(), 0.1f, 1e-6);
  EXPECT_EQ(r.dropped, 0);
}

TEST(RoutingTest, TiesGoToTheLowerExpertId) {
  torch::Tensor h = torch::tensor({{0.f, 1.f, 1.f, 1.f}, {2.f, 2.f, 2.f, 2.f}});
  RoutingResult r = RouteTokens(h, Identity(4), Policy(2), 0, {});
  EXPECT_EQ(r.expert_ids[0][0].item<int64_t>(), 1);
  EXPECT_EQ(r.expert_ids[0][1].item<int64_t>(), 2);
  EXPECT_EQ(r.expert_ids[1][0].item<int64_t>(), 0);
  EXPECT_EQ(r.expert_ids[1][1].item<int64_t>(), 1);
  EXPECT_NEAR(r.weights[1][0].item<float>(), 0.5f, 1e-6);
}

TEST(RoutingTest, WeightsSumToOnePerToken) {
  torch::manual_seed(3);
  torch::Tensor h = torch::randn({64, 16});
  RoutingResult r = RouteTokens(h, torch::randn({12, 16}), Policy(3), 0, {});
  EXPECT_TRUE(torch::allclose(r.weights.sum(-1), torch::ones({64}), 1e-5, 1e-6));
}

TEST(RoutingTest, MicroExpertIdsSpanAllExpertsTimesGranularity) {
  // 2 experts x m=3 -> 6 micro-experts; the best is micro 2 of expert 1 (flat id 5).
  torch::Tensor h = torch::tensor({{0.f, 0.1f, 0.2f, 0.3f, 0.4f, 5.f}});
  RoutingResult r = RouteTokens(h, Identity(6), Policy(1), 0, {});
  const int64_t id = r.expert_ids[0][0].item<int64_t>();
  EXPECT_EQ(id, 5);
  EXPECT_EQ(id / 3, 1);
  EXPECT_EQ(id % 3, 2);
  EXPECT_FLOAT_EQ(r.weights[0][0].item<float>(), 1.0f);
}

TEST(RoutingTest, CapacityDropsLaterTokensOfAFullExpert) {
  // 4 tokens, 2 experts, k=1, factor 1: capacity ceil(4*1/2) = 2. All prefer expert 0.
  torch::Tensor h = torch::tensor({{1.f, 0.f}, {1.f, 0.f}, {1.f, 0.f}, {0.f, 1.f}});
  RoutingPolicy p = Policy(1);
  p.capacity_factor = 1.0f;
  RoutingResult r = RouteTokens(h, Identity(2), p, 0, {});
  EXPECT_EQ(r.expert_ids[0][0].item<int64_t>(), 0);
  EXPECT_EQ(r.expert_ids[1][0].item<int64_t>(), 0);
  EXPECT_EQ(r.expert_ids[2][0].item<int64_t>(), -1);
  EXPECT_EQ(r.weights[2][0].item<float>(), 0.f);
  EXPECT_EQ(r.expert_ids[3][0].item<int64_t>(), 1);
  EXPECT_EQ(r.dropped, 1);
}

TEST(RoutingTest, CapacityServesFirstChoicesBeforeSecondChoices) {
  // k=2, 2 tokens, 2 experts, factor 0.5: capacity ceil(0.5*2*2/2) = 1 per expert.
  // Token 0 prefers 0 then 1, token 1 prefers 1 then 0: both first choices fit, no second does.
  torch::Tensor h = torch::tensor({{1.f, 0.f}, {0.f, 1.f}});
  RoutingPolicy p = Policy(2);
  p.capacity_factor = 0.5f;
  RoutingResult r = RouteTokens(h, Identity(2), p, 0, {});
  EXPECT_EQ(r.expert_ids[0][0].item<int64_t>(), 0);
  EXPECT_EQ(r.expert_ids[1][0].item<int64_t>(), 1);
  EXPECT_EQ(r.expert_ids[0][1].item<int64_t>(), -1);
  EXPECT_EQ(r.expert_ids[1][1].item<int64_t>(), -1);
  EXPECT_EQ(r.dropped, 2);
}

TEST(RoutingTest, NoiseDependsOnTheTokenKeyNotTheBatch) {
  torch::manual_seed(5);
  torch::Tensor h = torch::randn({8, 16});
  torch::Tensor gate = torch::randn({8, 16}) * 0.01;  // weak gate: noise decides
  RoutingPolicy p = Policy(2);
  p.noise_std = 1.0f;
  p.noise_seed = 99;
  std::vector<uint64_t> keys = {11, 12, 13, 14, 15, 16, 17, 18};
  RoutingResult all = RouteTokens(h, gate, p, 1, keys);
  RoutingResult one = RouteTokens(h.narrow(0, 5, 1), gate, p, 1, {keys[5]});
  EXPECT_TRUE(torch::equal(all.expert_ids[5], one.expert_ids[0]));
  RoutingResult quiet = RouteTokens(h, gate, Policy(2), 1, keys);
  EXPECT_FALSE(torch::equal(all.expert_ids, quiet.expert_ids)) << "noise changed nothing";
  p.noise_seed = 100;
  RoutingResult other = RouteTokens(h, gate, p, 1, keys);
  EXPECT_FALSE(torch::equal(all.expert_ids, other.expert_ids)) << "seed changed nothing";
}

// Inference routes in plain loops, training through differentiable tensor ops: the two must agree
// (same experts, same order, weights and probabilities to float rounding), with noise, capacity
// and ties included. The hand-computed cases above run the inference path.
TEST(RoutingTest, InferencePathEqualsTheDifferentiablePath) {
  torch::manual_seed(3);
  for (int trial = 0; trial < 20; ++trial) {
    const int n = 1 + trial * 7, c = 16, e = 8 + (trial % 3) * 8;
    torch::Tensor h = torch::randn({n, c});
    if (trial % 4 == 0) h.narrow(0, 0, 1).zero_();  // a token whose experts all tie
    torch::Tensor gate = torch::randn({e, c});
    RoutingPolicy policy;
    policy.top_k = 1 + trial % 3;
    policy.noise_std = trial % 2 == 0 ? 0.0 : 0.5;
    policy.noise_seed = 11;
    policy.capacity_factor = trial % 5 == 0 ? 1.0 : 0.0;
    std::vector<uint64_t> keys(n);
    for (int i = 0; i < n; ++i) keys[i] = 1000 + 7 * i;
    RoutingResult fast;
    {
      torch::NoGradGuard no_grad;
      fast = RouteTokens(h, gate, policy, 2, keys);
    }
    RoutingResult tensors = RouteTokens(h, gate.clone().requires_grad_(true), policy, 2, keys);
    ASSERT_TRUE(tensors.weights.requires_grad()) << "the differentiable path ran";
    EXPECT_TRUE(torch::equal(fast.expert_ids, tensors.expert_ids)) << "trial " << trial;
    EXPECT_TRUE(torch::allclose(fast.weights, tensors.weights.detach(), 1e-5, 1e-6))
        << "trial " << trial;
    EXPECT_TRUE(torch::allclose(fast.probs, tensors.probs.detach(), 1e-5, 1e-6))
        << "trial " << trial;
    EXPECT_EQ(fast.dropped, tensors.dropped) << "trial " << trial;
  }
}

// The packed gate of inference: a token is routed to the same experts with the same bits of
// weight and probability whatever batch it travels in (the router, the orchestrator's prediction
// and the embedded runner batch differently), and like the tensor gate up to rounding.
TEST(RoutingTest, APackedGateRoutesATokenTheSameInAnyBatch) {
  torch::manual_seed(9);
  const int64_t n = 37, c = 48, e = 8;
  torch::Tensor weight = torch::randn({e, c});
  torch::Tensor hidden = torch::randn({n, c});
  RoutingPolicy policy = Policy(2);
  policy.noise_std = 0.5;
  std::vector<uint64_t> keys(n);
  for (int64_t t = 0; t < n; ++t) keys[t] = 1000 + t;
  const PackedGate gate(weight);
  RoutingResult all = RouteTokens(hidden, gate, policy, 1, keys);
  RoutingResult tensors = RouteTokens(hidden, weight, policy, 1, keys);
  EXPECT_TRUE(torch::allclose(all.logits, tensors.logits, 1e-5, 1e-5));
  for (int64_t t = 0; t < n; ++t) {
    RoutingResult one =
        RouteTokens(hidden.narrow(0, t, 1), gate, policy, 1, absl::MakeConstSpan(&keys[t], 1));
    EXPECT_TRUE(torch::equal(one.logits[0], all.logits[t])) << t;
    EXPECT_TRUE(torch::equal(one.expert_ids[0], all.expert_ids[t])) << t;
    EXPECT_TRUE(torch::equal(one.weights[0], all.weights[t])) << t;
    EXPECT_TRUE(torch::equal(one.probs[0], all.probs[t])) << t;
  }
}

TEST(RoutingTest, LoadBalancingLossIsOneWhenBalanced) {
  // Token 0 -> expert 0 with p [0.75, 0.25]; token 1 -> expert 1 with p [0.25, 0.75].
  // f = [0.5, 0.5], P = [0.5, 0.5]: 2 * (0.25 + 0.25) = 1.
  torch::Tensor h =
      torch::tensor({{std::log(0.75f), std::log(0.25f)}, {std::log(0.25f), std::log(0.75f)}});
  RoutingResult r = RouteTokens(h, Identity(2), Policy(1), 0, {});
  EXPECT_NEAR(LoadBalancingLoss(r).item<float>(), 1.0f, 1e-6);
  // All tokens on expert 0 with p [0.75, 0.25]: f = [1, 0], P = [0.75, 0.25] -> 1.5.
  torch::Tensor skew =
      torch::tensor({{std::log(0.75f), std::log(0.25f)}, {std::log(0.75f), std::log(0.25f)}});
  EXPECT_NEAR(LoadBalancingLoss(RouteTokens(skew, Identity(2), Policy(1), 0, {})).item<float>(),
              1.5f, 1e-6);
}

TEST(RoutingTest, KeyedGaussianIsStandardNormal) {
  double sum = 0, sq = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const double g = KeyedGaussian(1, 0, static_cast<uint64_t>(i), 3);
    sum += g;
    sq += g * g;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.03);
  EXPECT_NEAR(sq / n, 1.0, 0.05);
  EXPECT_EQ(KeyedGaussian(1, 2, 3, 4), KeyedGaussian(1, 2, 3, 4));
}

}  // namespace
}  // namespace moe
