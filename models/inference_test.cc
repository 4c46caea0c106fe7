#include "models/inference.h"

#include <gtest/gtest.h>

#include "models/checkpoint.h"
#include "models/moe_executor.h"
#include "models/test_util.h"
#include "models/transformer.h"

namespace moe {
namespace {

class InferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = testing::TinyConfig();
    auto ckpt = RandomCheckpoint(config_, 21);
    ASSERT_TRUE(ckpt.ok());
    state_ = ckpt->state;
    auto model = InferenceModel::Create(config_, state_);
    ASSERT_TRUE(model.ok());
    model_ = std::make_unique<InferenceModel>(std::move(*model));
    auto exec = LocalMoeExecutor::Create(config_, state_);
    ASSERT_TRUE(exec.ok());
    exec_ = std::move(*exec);
  }

  // Full recompute through the training module: logits [T, vocab].
  torch::Tensor FullLogits(const std::vector<int64_t>& ids) {
    MoeTransformer m(config_);
    EXPECT_TRUE(LoadStateDict(*m, state_).ok());
    torch::NoGradGuard g;
    return m->forward(torch::tensor(ids).unsqueeze(0), exec_->policy())[0];
  }

  torch::Tensor RunLayers(torch::Tensor x,
                          const std::function<torch::Tensor(int, torch::Tensor)>& attend) {
    for (int l = 0; l < config_.n_layers; ++l) {
      torch::Tensor h = attend(l, x);
      auto out = exec_->Forward(l, model_->Ln2(l, h), {}, false);
      EXPECT_TRUE(out.ok());
      x = h + out->output;
    }
    return model_->Logits(x);
  }

  ModelConfig config_;
  std::map<std::string, torch::Tensor> state_;
  std::unique_ptr<InferenceModel> model_;
  std::unique_ptr<LocalMoeExecutor> exec_;
};

TEST_F(InferenceTest, KvCacheDecodingEqualsFullRecompute) {
  std::vector<int64_t> ids = {5, 17, 200, 3, 3, 99, 150, 42, 7, 8, 9, 250};
  torch::Tensor full = FullLogits(ids);
  KvCache cache(config_, 1);
  const int prompt = 4;
  std::vector<int64_t> head(ids.begin(), ids.begin() + prompt);
  torch::Tensor x = model_->Embed(torch::tensor(head), torch::arange(prompt));
  torch::Tensor logits =
      RunLayers(x, [&](int l, torch::Tensor in) { return model_->AttendPrefill(l, in, cache, 0); });
  EXPECT_TRUE(torch::allclose(logits, full.narrow(0, 0, prompt), 1e-4, 1e-5));
  for (size_t p = prompt; p < ids.size(); ++p) {
    DecodeBatch batch = DecodeBatch::Make({static_cast<int64_t>(p)});
    torch::Tensor xt = model_->Embed(torch::tensor({ids[p]}), batch.pos);
    torch::Tensor step = RunLayers(
        xt, [&](int l, torch::Tensor in) { return model_->AttendDecode(l, in, cache, batch); });
    EXPECT_TRUE(torch::allclose(step[0], full[p], 1e-4, 1e-5))
        << "position " << p << " max diff " << (step[0] - full[p]).abs().max().item<float>();
  }
}

TEST_F(InferenceTest, BatchedDecodeOfUnequalLengthsEqualsEachAlone) {
  // Two sequences of lengths 3 and 6 decode one token together; each must match its own
  // full recompute (each reads only its own positions of the cache), and be the same bits as
  // when it decodes alone: a row's result must not depend on the rest of the batch.
  std::vector<int64_t> a = {1, 2, 3, 4}, b = {10, 11, 12, 13, 14, 15, 16};
  KvCache cache(config_, 2);
  for (int s = 0; s < 2; ++s) {
    const auto& seq = s == 0 ? a : b;
    std::vector<int64_t> head(seq.begin(), seq.end() - 1);
    const int64_t t = static_cast<int64_t>(head.size());
    RunLayers(model_->Embed(torch::tensor(head), torch::arange(t)),
              [&](int l, torch::Tensor in) { return model_->AttendPrefill(l, in, cache, s); });
  }
  DecodeBatch batch = DecodeBatch::Make({3, 6});
  ASSERT_EQ(batch.lens, (std::vector<int64_t>{4, 7}));
  torch::Tensor x = model_->Embed(torch::tensor({a.back(), b.back()}), batch.pos);
  torch::Tensor step = RunLayers(
      x, [&](int l, torch::Tensor in) { return model_->AttendDecode(l, in, cache, batch); });
  EXPECT_TRUE(torch::allclose(step[0], FullLogits(a)[3], 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(step[1], FullLogits(b)[6], 1e-4, 1e-5));
  for (int s = 0; s < 2; ++s) {
    DecodeBatch alone = DecodeBatch::Make({s == 0 ? 3 : 6});
    alone.first_slot = s;
    torch::Tensor one = RunLayers(x.narrow(0, s, 1), [&](int l, torch::Tensor in) {
      return model_->AttendDecode(l, in, cache, alone);
    });
    EXPECT_TRUE(torch::equal(one[0], step[s])) << "sequence " << s;
  }
}

TEST_F(InferenceTest, SlotMoveKeepsASequenceDecodable) {
  std::vector<int64_t> ids = {40, 41, 42, 43, 44};
  KvCache cache(config_, 3);
  std::vector<int64_t> head(ids.begin(), ids.end() - 1);
  RunLayers(model_->Embed(torch::tensor(head), torch::arange(4)),
            [&](int l, torch::Tensor in) { return model_->AttendPrefill(l, in, cache, 2); });
  cache.MoveSlot(2, 0, 4);
  DecodeBatch batch = DecodeBatch::Make({4});
  torch::Tensor step =
      RunLayers(model_->Embed(torch::tensor({ids.back()}), batch.pos),
                [&](int l, torch::Tensor in) { return model_->AttendDecode(l, in, cache, batch); });
  EXPECT_TRUE(torch::allclose(step[0], FullLogits(ids)[4], 1e-4, 1e-5));
}

}  // namespace
}  // namespace moe
