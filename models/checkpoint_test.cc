#include "models/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "models/test_util.h"

namespace moe {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = testing::TinyConfig();
    auto ckpt = RandomCheckpoint(config_, 7);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    state_ = ckpt->state;
    dir_ = testing::TempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  ModelConfig config_;
  std::map<std::string, torch::Tensor> state_;
  std::string dir_;
};

TEST_F(CheckpointTest, RoundTripsExactlyInFloat32) {
  ASSERT_TRUE(SaveCheckpoint(dir_, config_, state_, /*half=*/false).ok());
  absl::StatusOr<Checkpoint> back = LoadCheckpoint(dir_);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(ModelId(back->config), ModelId(config_));
  ASSERT_EQ(back->state.size(), state_.size());
  for (const auto& [name, t] : state_) EXPECT_TRUE(torch::equal(back->state.at(name), t)) << name;
}

TEST_F(CheckpointTest, HalfPrecisionOnDiskLoadsAsFloat32) {
  ASSERT_TRUE(SaveCheckpoint(dir_, config_, state_, /*half=*/true).ok());
  absl::StatusOr<Checkpoint> back = LoadCheckpoint(dir_);
  ASSERT_TRUE(back.ok()) << back.status();
  const torch::Tensor& w = back->state.at("tok_emb.weight");
  EXPECT_EQ(w.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::allclose(w, state_.at("tok_emb.weight"), 1e-3, 1e-4));
}

TEST_F(CheckpointTest, MissingTensorIsNamed) {
  state_.erase("blocks.1.moe.experts.2.w1.weight");
  ASSERT_TRUE(SaveCheckpoint(dir_, config_, state_, false).ok());
  absl::StatusOr<Checkpoint> back = LoadCheckpoint(dir_);
  ASSERT_FALSE(back.ok());
  EXPECT_THAT(back.status().message(), HasSubstr("missing: blocks.1.moe.experts.2.w1.weight"));
}

TEST_F(CheckpointTest, WrongShapeIsNamedWithBothShapes) {
  state_["blocks.0.attn.qkv.weight"] = torch::zeros({5, 5});
  ASSERT_TRUE(SaveCheckpoint(dir_, config_, state_, false).ok());
  absl::StatusOr<Checkpoint> back = LoadCheckpoint(dir_);
  ASSERT_FALSE(back.ok());
  EXPECT_THAT(back.status().message(),
              HasSubstr("blocks.0.attn.qkv.weight has shape [5, 5], config implies [96, 32]"));
}

TEST_F(CheckpointTest, UnexpectedTensorIsNamed) {
  state_["lm_head.extra"] = torch::zeros({2});
  ASSERT_TRUE(SaveCheckpoint(dir_, config_, state_, false).ok());
  EXPECT_THAT(LoadCheckpoint(dir_).status().message(), HasSubstr("unexpected: lm_head.extra"));
}

TEST_F(CheckpointTest, NonFiniteWeightsAreRefused) {
  state_["ln_f.weight"] = torch::full({config_.d_model}, std::nanf(""));
  ASSERT_TRUE(SaveCheckpoint(dir_, config_, state_, false).ok());
  EXPECT_THAT(LoadCheckpoint(dir_).status().message(), HasSubstr("ln_f.weight has NaN"));
}

TEST_F(CheckpointTest, TruncatedFileGivesDataLoss) {
  ASSERT_TRUE(SaveCheckpoint(dir_, config_, state_, false).ok());
  const fs::path file = fs::path(dir_) / kStateFile;
  fs::resize_file(file, fs::file_size(file) / 2);
  absl::StatusOr<Checkpoint> back = LoadCheckpoint(dir_);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(back.status().message(), HasSubstr("truncated or corrupt"));
}

TEST_F(CheckpointTest, GarbageFileGivesDataLoss) {
  ASSERT_TRUE(SaveCheckpoint(dir_, config_, state_, false).ok());
  std::ofstream(fs::path(dir_) / kStateFile) << "this is not a pickle";
  EXPECT_EQ(LoadCheckpoint(dir_).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(CheckpointTest, MissingDirectoryIsNotFound) {
  EXPECT_EQ(LoadCheckpoint(dir_ + "/nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CheckpointTest, RandomInitIsDeterministicPerSeed) {
  auto a = RandomCheckpoint(config_, 7);
  auto b = RandomCheckpoint(config_, 8);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(torch::equal(a->state.at("tok_emb.weight"), state_.at("tok_emb.weight")));
  EXPECT_FALSE(torch::equal(b->state.at("tok_emb.weight"), state_.at("tok_emb.weight")));
}

}  // namespace
}  // namespace moe
