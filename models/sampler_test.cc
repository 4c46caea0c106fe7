#include "models/sampler.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace moe {
namespace {

TEST(SamplerTest, TemperatureZeroIsGreedyWithLowestIdOnTies) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p);
  EXPECT_EQ(s.Sample(std::vector<float>{0.1f, 2.0f, 2.0f, -1.0f}), 1);
}

TEST(SamplerTest, SameSeedSameDraws) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 42;
  std::vector<float> logits = {0.f, 0.5f, 1.f, 1.5f};
  Sampler a(p), b(p);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(a.Sample(logits), b.Sample(logits));
}

TEST(SamplerTest, TopKOnlyDrawsFromTheKBest) {
  SamplingParams p;
  p.temperature = 5.0f;  // flat, so excluded ids would show up if allowed
  p.top_k = 2;
  Sampler s(p);
  std::vector<float> logits = {3.f, 0.f, 2.f, 1.f};
  for (int i = 0; i < 200; ++i) {
    const int id = s.Sample(logits);
    EXPECT_TRUE(id == 0 || id == 2) << id;
  }
}

TEST(SamplerTest, TopPKeepsSmallestPrefixReachingP) {
  // Probabilities at T=1: softmax(log [0.5, 0.3, 0.15, 0.05]).
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.75f;  // 0.5 + 0.3 >= 0.75: ids 0 and 1 only
  Sampler s(p);
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  std::map<int, int> seen;
  for (int i = 0; i < 2000; ++i) ++seen[s.Sample(logits)];
  EXPECT_EQ(seen.count(2) + seen.count(3), 0u);
  // 0.5 / 0.8 = 62.5% of draws are id 0.
  EXPECT_NEAR(seen[0] / 2000.0, 0.625, 0.05);
}

TEST(SamplerTest, ValidationNamesTheField) {
  SamplingParams p;
  p.temperature = -1;
  EXPECT_NE(ValidateSampling(p).message().find("temperature"), std::string::npos);
  p = SamplingParams();
  p.top_p = 0;
  EXPECT_NE(ValidateSampling(p).message().find("top_p"), std::string::npos);
  p.top_p = 1.5f;
  EXPECT_NE(ValidateSampling(p).message().find("top_p"), std::string::npos);
}

}  // namespace
}  // namespace moe
