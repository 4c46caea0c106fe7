#include "models/train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "models/checkpoint.h"
#include "models/test_util.h"
#include "models/transformer.h"

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

// A 64-token model and a short run on synthetic streams written to `dir`.
ModelConfig TinyModel() {
  ModelConfig c = testing::TinyConfig();
  c.vocab_size = 64;
  return c;
}
TrainOptions TinyRun(const std::string& dir, int batch, int seq_len, int64_t steps, int warmup,
                     int eval_every, int eval_batches) {
  TrainOptions o;
  o.train_ids = WriteSynthetic(dir, "train.ids", 20000, 1);
  o.val_ids = WriteSynthetic(dir, "val.ids", 4000, 2);
  o.out_dir = dir + "/out";
  o.batch_size = batch;
  o.seq_len = seq_len;
  o.steps = steps;
  o.warmup_steps = warmup;
  o.eval_every = eval_every;
  o.eval_batches = eval_batches;
  return o;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A curve.tsv without the row of one step.
std::string WithoutRow(std::string curve, int step) {
  const size_t row = curve.find(absl::StrCat("\n", step, "\t"));
  if (row != std::string::npos) curve.erase(row + 1, curve.find('\n', row + 1) - row);
  return curve;
}

TEST(TrainerTest, TinySyntheticRunDrivesTheLossDownAndKeepsTheBest) {
  const ModelConfig c = TinyModel();
  TrainOptions o = TinyRun(testing::TempDir("train"), 8, 32, 80, 10, 40, 20);
  o.lr = 1e-2;
  o.min_lr = 1e-3;
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

// The run the resume tests stop and restart: 30 steps, evaluated every 10, with dropout, so the
// dropout stream must be carried over too.
TrainOptions ResumableRun(const std::string& dir) {
  TrainOptions o = TinyRun(dir, 4, 16, 30, 5, 10, 4);
  o.dropout = 0.2;
  o.half_best = false;
  return o;
}

// Two checkpoints hold the same tensors, bit for bit.
void ExpectSameWeights(const std::string& a_dir, const std::string& b_dir) {
  absl::StatusOr<Checkpoint> a = LoadCheckpoint(a_dir);
  absl::StatusOr<Checkpoint> b = LoadCheckpoint(b_dir);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(a->state.size(), b->state.size());
  for (const auto& [name, t] : a->state) {
    ASSERT_TRUE(b->state.count(name)) << name;
    EXPECT_TRUE(torch::equal(t, b->state.at(name))) << a_dir << " vs " << b_dir << ": " << name;
  }
}

// A run stopped part-way and resumed is the run that never stopped: the same weights, bit for
// bit, and the same curve.
TEST(TrainerTest, AStoppedAndResumedRunIsTheUninterruptedRun) {
  const std::string dir = testing::TempDir("train_resume");
  const ModelConfig c = TinyModel();
  const TrainOptions o = ResumableRun(dir);

  TrainOptions whole = o;
  whole.out_dir = dir + "/whole";
  whole.keep_every = 15;
  ASSERT_TRUE(Train(c, whole).ok());
  // The kept weights: after step 15 and after step 30, the last.
  EXPECT_TRUE(LoadCheckpoint(whole.out_dir + "/steps/000015").ok());
  ExpectSameWeights(whole.out_dir + "/steps/000030", whole.out_dir + "/last");
  EXPECT_FALSE(std::filesystem::exists(whole.out_dir + "/steps/000010"));

  TrainOptions parts = o;
  parts.out_dir = dir + "/parts";
  parts.stop_after = 13;  // not on an evaluation step
  absl::StatusOr<TrainReport> first = Train(c, parts);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->steps, 13);
  parts.resume = true;
  parts.stop_after = 0;
  absl::StatusOr<TrainReport> rest = Train(c, parts);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(rest->resumed_from, 13);
  EXPECT_EQ(rest->steps, 30);

  ExpectSameWeights(whole.out_dir + "/last", parts.out_dir + "/last");
  // The curve has the extra stop at 13 (and the whole run one at 15, for the kept weights); every
  // other row is the same, train loss included.
  const std::string whole_curve = ReadAll(whole.out_dir + "/curve.tsv");
  const std::string parts_curve = ReadAll(parts.out_dir + "/curve.tsv");
  ASSERT_NE(WithoutRow(parts_curve, 13), parts_curve);
  ASSERT_NE(WithoutRow(whole_curve, 15), whole_curve);
  EXPECT_EQ(WithoutRow(parts_curve, 13), WithoutRow(whole_curve, 15));

  // Resuming with a stop that is already behind is refused, naming the option.
  parts.stop_after = 20;
  EXPECT_NE(Train(c, parts).status().message().find("stop_after"), std::string::npos);
}

// A run killed while it replaced its resume checkpoint (last/ moved aside, the new one half
// written in last.tmp, its curve row written and one more torn) resumes from the whole checkpoint
// it had, and ends as the run that was never stopped: the same weights and the same curve.
TEST(TrainerTest, ARunKilledWhileSavingResumesFromItsLastWholeCheckpoint) {
  namespace fs = std::filesystem;
  const std::string dir = testing::TempDir("train_killed");
  const ModelConfig c = TinyModel();
  const TrainOptions o = ResumableRun(dir);
  TrainOptions whole = o;
  whole.out_dir = dir + "/whole";
  ASSERT_TRUE(Train(c, whole).ok());

  TrainOptions parts = o;
  parts.out_dir = dir + "/parts";
  parts.stop_after = 20;  // an evaluation step: the curves have the same rows
  ASSERT_TRUE(Train(c, parts).ok());
  const fs::path out = parts.out_dir;
  fs::rename(out / "last", out / "last.old");
  fs::create_directories(out / "last.tmp");
  std::ofstream(out / "last.tmp" / "model.pt") << "torn";
  std::ofstream(out / "curve.tsv", std::ios::app) << "30\t0.5\t0.5\n40\t0.";

  parts.resume = true;
  parts.stop_after = 0;
  absl::StatusOr<TrainReport> rest = Train(c, parts);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(rest->resumed_from, 20);
  EXPECT_EQ(rest->steps, 30);
  EXPECT_FALSE(fs::exists(out / "last.old"));
  EXPECT_FALSE(fs::exists(out / "last.tmp"));
  ExpectSameWeights(whole.out_dir + "/last", parts.out_dir + "/last");
  EXPECT_EQ(ReadAll(parts.out_dir + "/curve.tsv"), ReadAll(whole.out_dir + "/curve.tsv"));
}

TEST(TrainerTest, AveragesKeptWeightsElementWise) {
  const std::string dir = testing::TempDir("train_average");
  const ModelConfig c = TinyModel();
  TrainOptions o = TinyRun(dir, 4, 16, 20, 5, 10, 2);
  o.keep_every = 10;
  ASSERT_TRUE(Train(c, o).ok());
  const std::string a_dir = o.out_dir + "/steps/000010", b_dir = o.out_dir + "/steps/000020";
  ASSERT_TRUE(AverageCheckpoints({a_dir, b_dir}, dir + "/mean", /*half=*/false).ok());
  absl::StatusOr<Checkpoint> a = LoadCheckpoint(a_dir);
  absl::StatusOr<Checkpoint> b = LoadCheckpoint(b_dir);
  absl::StatusOr<Checkpoint> mean = LoadCheckpoint(dir + "/mean");
  ASSERT_TRUE(a.ok() && b.ok() && mean.ok());
  for (const auto& [name, t] : a->state) {
    EXPECT_TRUE(torch::allclose(mean->state.at(name), (t + b->state.at(name)) / 2, 1e-6, 1e-7))
        << name;
  }
  EXPECT_FALSE(torch::equal(a->state.begin()->second, mean->state.begin()->second));

  // Checkpoints of different models do not average; nor does nothing.
  ModelConfig other = c;
  other.d_ff *= 2;
  absl::StatusOr<Checkpoint> random = RandomCheckpoint(other, 1);
  ASSERT_TRUE(random.ok());
  ASSERT_TRUE(SaveCheckpoint(dir + "/other", other, random->state, false).ok());
  EXPECT_NE(AverageCheckpoints({a_dir, dir + "/other"}, dir + "/bad", false)
                .message()
                .find("not the same model"),
            std::string::npos);
  EXPECT_NE(AverageCheckpoints({}, dir + "/bad", false).message().find("models"),
            std::string::npos);
}

TEST(TrainerTest, ExpertDropoutActsOnlyInTraining) {
  const ModelConfig c = TinyModel();
  MoeTransformer m(c);
  m->RandomInit(1);
  torch::NoGradGuard no_grad;
  const torch::Tensor idx = torch::arange(16, torch::kInt64).remainder(c.vocab_size).view({2, 8});
  const RoutingPolicy policy = DefaultPolicy(c);
  m->eval();
  const torch::Tensor ref = m->forward(idx, policy);
  m->expert_dropout = 0.5;
  EXPECT_TRUE(torch::equal(m->forward(idx, policy), ref));  // evaluation: no dropout
  m->train();
  const torch::Tensor a = m->forward(idx, policy), b = m->forward(idx, policy);
  EXPECT_FALSE(torch::allclose(a, ref));
  EXPECT_FALSE(torch::allclose(a, b));  // fresh masks each time
  m->expert_dropout = 0;
  EXPECT_TRUE(torch::allclose(m->forward(idx, policy), ref, 1e-5, 1e-6));
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
