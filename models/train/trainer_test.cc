#include "models/train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "models/checkpoint.h"
#include "models/test_util.h"

namespace moe {
namespace {

// Writes a token stream with an easy rule (each token follows from the previous one), so that
// a few dozen steps must cut the loss well below uniform guessing.
std::string WriteSynthetic(const std::string& dir, const std::string& name, int n, int seed) {
  std::vector<uint16_t> ids(n);
  uint32_t x = seed;
  for (int i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    ids[i] = (i % 16 == 0) ? 3 + (x >> 16) % 40 : 3 + (ids[i - 1] * 7 + 1) % 40;
  }
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(ids.data()), ids.size() * 2);
  return path;
}

TEST(TrainerTest, TinySyntheticRunDrivesTheLossDownAndKeepsTheBest) {
  const std::string dir = testing::TempDir("train");
  ModelConfig c = testing::TinyConfig();
  c.vocab_size = 64;
  TrainOptions o;
  o.train_ids = WriteSynthetic(dir, "train.ids", 20000, 1);
  o.val_ids = WriteSynthetic(dir, "val.ids", 4000, 2);
  o.out_dir = dir + "/out";
  o.batch_size = 8;
  o.seq_len = 32;
  o.steps = 80;
  o.warmup_steps = 10;
  o.lr = 1e-2;
  o.min_lr = 1e-3;
  o.eval_every = 40;
  o.eval_batches = 20;
  absl::StatusOr<TrainReport> r = Train(c, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->steps, 80);
  // Uniform guessing over 64 tokens costs ln 64 = 4.16 nats.
  EXPECT_LT(r->best_val_loss, 0.6 * std::log(64.0));
  // The best checkpoint loads and evaluates to the reported loss.
  absl::StatusOr<std::vector<uint16_t>> val = ReadTokenFile(o.val_ids);
  ASSERT_TRUE(val.ok());
  absl::StatusOr<EvalReport> e = Evaluate(o.out_dir + "/best", *val, 32, 20 * 32);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_NEAR(e->cross_entropy, r->best_val_loss, 0.05);
  // Resuming from the last checkpoint continues the step count instead of starting over.
  o.steps = 100;
  o.resume = true;
  absl::StatusOr<TrainReport> more = Train(c, o);
  ASSERT_TRUE(more.ok()) << more.status();
  EXPECT_EQ(more->steps, 100);
  EXPECT_LE(more->best_val_loss, r->best_val_loss);
}

TEST(TrainerTest, RefusesTokensOutsideTheVocabulary) {
  const std::string dir = testing::TempDir("train_bad");
  ModelConfig c = testing::TinyConfig();
  c.vocab_size = 10;
  TrainOptions o;
  o.train_ids = WriteSynthetic(dir, "train.ids", 2000, 1);
  o.val_ids = o.train_ids;
  o.out_dir = dir + "/out";
  o.seq_len = 16;
  EXPECT_NE(Train(c, o).status().message().find("vocab_size"), std::string::npos);
}

}  // namespace
}  // namespace moe
