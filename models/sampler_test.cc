#include "models/sampler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
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

TEST(SamplerTest, FrequencyPenaltyGrowsWithEachAppearance) {
  // OpenAI: logit -= count * frequency_penalty. Token 0 leads by 0.1; after one appearance it
  // trails token 1, after which the two alternate.
  SamplingParams p;
  p.temperature = 0;
  p.frequency_penalty = 0.5f;
  Sampler s(p);
  std::vector<float> logits = {2.0f, 1.9f, 0.0f};
  std::vector<int> drawn;
  for (int i = 0; i < 4; ++i) drawn.push_back(s.Sample(logits));
  EXPECT_EQ(drawn, (std::vector<int>{0, 1, 0, 1}));
}

TEST(SamplerTest, PresencePenaltyCountsOnlyOnce) {
  // OpenAI: logit -= presence_penalty once the token has appeared, however often. After 0 and 1
  // have both appeared they are back in their original order, so 0 repeats from then on.
  SamplingParams p;
  p.temperature = 0;
  p.presence_penalty = 0.5f;
  Sampler s(p);
  std::vector<float> logits = {2.0f, 1.9f, 0.0f};
  std::vector<int> drawn;
  for (int i = 0; i < 4; ++i) drawn.push_back(s.Sample(logits));
  EXPECT_EQ(drawn, (std::vector<int>{0, 1, 0, 0}));
}

TEST(SamplerTest, PresenceAndFrequencyIgnoreThePrompt) {
  SamplingParams p;
  p.temperature = 0;
  p.presence_penalty = 2;
  p.frequency_penalty = 2;
  const std::vector<int> prompt = {0, 0, 0};
  Sampler s(p, prompt);
  EXPECT_EQ(s.Sample(std::vector<float>{2.0f, 1.9f}), 0);
}

TEST(SamplerTest, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 1.5f;
  const std::vector<int> prompt = {0};
  // 2.0 / 1.5 = 1.33 < 1.5: the prompt's token loses.
  Sampler a(p, prompt);
  EXPECT_EQ(a.Sample(std::vector<float>{2.0f, 1.5f}), 1);
  // -1.0 * 1.5 = -1.5 < -1.2 (dividing would have made it -0.67 and kept it first).
  Sampler b(p, prompt);
  EXPECT_EQ(b.Sample(std::vector<float>{-1.0f, -1.2f}), 1);
  // Generated tokens count too: after drawing 1, token 1 is penalized as well.
  Sampler c(p);
  std::vector<float> logits = {1.8f, 2.0f};
  EXPECT_EQ(c.Sample(logits), 1);  // 2.0 first
  EXPECT_EQ(c.Sample(logits), 0);  // 2.0 / 1.5 = 1.33 < 1.8
}

TEST(SamplerTest, LogprobsAreTheModelsOwnWithTheTopAlternatives) {
  SamplingParams p;
  p.temperature = 3.0f;        // does not change the reported log-probabilities
  p.frequency_penalty = 2.0f;  // nor do the penalties
  p.logprobs = 2;
  p.seed = 5;
  const std::vector<float> probs = {0.5f, 0.3f, 0.15f, 0.05f};
  std::vector<float> logits;
  for (float q : probs) logits.push_back(std::log(q) + 7.0f);  // softmax ignores the offset
  Sampler s(p);
  for (int i = 0; i < 20; ++i) {
    const int id = s.Sample(logits);
    const TokenLogprobs& lp = s.last_logprobs();
    EXPECT_NEAR(lp.logprob, std::log(probs[id]), 1e-5);
    ASSERT_EQ(lp.top.size(), 2u);
    EXPECT_EQ(lp.top[0].token_id, 0);
    EXPECT_NEAR(lp.top[0].logprob, std::log(0.5), 1e-5);
    EXPECT_EQ(lp.top[1].token_id, 1);
    EXPECT_NEAR(lp.top[1].logprob, std::log(0.3), 1e-5);
  }
}

TEST(SamplerTest, NoLogprobsUnlessAsked) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p);
  s.Sample(std::vector<float>{1.f, 2.f});
  EXPECT_TRUE(s.last_logprobs().top.empty());
  p.logprobs = 0;  // the drawn token's only
  Sampler t(p);
  EXPECT_EQ(t.Sample(std::vector<float>{0.f, 0.f}), 0);
  EXPECT_NEAR(t.last_logprobs().logprob, std::log(0.5), 1e-6);
  EXPECT_TRUE(t.last_logprobs().top.empty());
}

TEST(SamplerTest, PenaltyAndLogprobValidationNamesTheField) {
  auto message = [](void (*set)(SamplingParams&)) {
    SamplingParams p;
    set(p);
    return std::string(ValidateSampling(p).message());
  };
  EXPECT_THAT(message([](SamplingParams& p) { p.presence_penalty = 2.5f; }),
              ::testing::HasSubstr("presence_penalty: must be in [-2, 2]"));
  EXPECT_THAT(message([](SamplingParams& p) { p.frequency_penalty = -3; }),
              ::testing::HasSubstr("frequency_penalty: must be in [-2, 2]"));
  EXPECT_THAT(message([](SamplingParams& p) { p.frequency_penalty = NAN; }),
              ::testing::HasSubstr("frequency_penalty"));
  EXPECT_THAT(message([](SamplingParams& p) { p.repetition_penalty = 0; }),
              ::testing::HasSubstr("repetition_penalty: must be in (0, 2]"));
  EXPECT_THAT(message([](SamplingParams& p) { p.logprobs = 21; }),
              ::testing::HasSubstr("logprobs: must be in [0, 20]"));
  SamplingParams ok;
  ok.logprobs = 20;
  ok.repetition_penalty = 2;
  EXPECT_TRUE(ValidateSampling(ok).ok());
}

}  // namespace
}  // namespace moe
