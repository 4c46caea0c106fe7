#include "models/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace moe {
namespace {

using ::testing::HasSubstr;

TEST(ConfigTest, RoundTripsThroughJson) {
  ModelConfig c;
  c.n_shared = 2;
  c.granularity = 4;
  c.top_k = 6;
  absl::StatusOr<ModelConfig> back = ParseConfigJson(ConfigToJson(c));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->n_shared, 2);
  EXPECT_EQ(back->granularity, 4);
  EXPECT_EQ(back->top_k, 6);
  EXPECT_EQ(ModelId(*back), ModelId(c));
}

TEST(ConfigTest, RejectsTopKAboveMicroExperts) {
  absl::StatusOr<ModelConfig> c =
      ParseConfigJson(R"({"n_experts": 2, "granularity": 2, "top_k": 5})");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("top_k"));
}

TEST(ConfigTest, RejectsUnknownFieldsAndWrongTypes) {
  EXPECT_THAT(ParseConfigJson(R"({"n_expert": 8})").status().message(), HasSubstr("n_expert"));
  EXPECT_THAT(ParseConfigJson(R"({"d_model": "big"})").status().message(), HasSubstr("d_model"));
  EXPECT_THAT(ParseConfigJson("not json").status().message(), HasSubstr("JSON"));
  EXPECT_THAT(ParseConfigJson(R"({"d_model": 100, "n_heads": 6})").status().message(),
              HasSubstr("n_heads"));
}

TEST(ConfigTest, CountsSeedSizedModelParameters) {
  ModelConfig c;  // the seeds' size: d 192, 3 layers, 8 experts of width 384, vocab 4096
  EXPECT_GT(c.ParameterCount(), 4'000'000);
  EXPECT_LT(c.ParameterCount(), 5'000'000);
  EXPECT_LT(c.ActiveParameterCount(), c.ParameterCount() / 2);
}

TEST(ConfigTest, ValidatesPolicy) {
  ModelConfig c;
  RoutingPolicy p = DefaultPolicy(c);
  EXPECT_TRUE(ValidatePolicy(p, c).ok());
  p.top_k = 9;
  EXPECT_THAT(ValidatePolicy(p, c).message(), HasSubstr("top_k"));
  p = DefaultPolicy(c);
  p.noise_std = -1;
  EXPECT_THAT(ValidatePolicy(p, c).message(), HasSubstr("noise_std"));
}

}  // namespace
}  // namespace moe
