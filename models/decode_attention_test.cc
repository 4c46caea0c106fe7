#include "models/decode_attention.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "models/test_util.h"

namespace moe {
namespace {

class DecodeAttentionTest : public ::testing::TestWithParam<SimdLevel> {};

// Against LibTorch's softmax(q k^T * scale) v per sequence and head, on a cache with more slots,
// heads and positions than read (each sequence must read only its own first len positions),
// head sizes that are and are not multiples of the vector width, lengths 1 to the whole row (81:
// not a multiple of the vector width either).
TEST_P(DecodeAttentionTest, MatchesSoftmaxAttentionOverEachSequencesOwnPositions) {
  torch::manual_seed(3);
  for (int64_t d : {32, 12, 8, 3}) {
    const int64_t slots = 10, h = 3, context = 81, first = 1;
    const std::vector<int64_t> lens = {1, 7, 70, 8, 33, 80, 64, 79};
    const int64_t b = static_cast<int64_t>(lens.size());
    torch::Tensor keys = torch::randn({slots, h, d, context}) * 2;  // transposed
    torch::Tensor values = torch::randn({slots, h, context, d});
    torch::Tensor q = torch::randn({b, h * d}) * 2;
    torch::Tensor out = torch::full({b, h * d}, 99.0f);
    DecodeAttentionArgs args;
    args.q = q.data_ptr<float>();
    args.q_stride = h * d;
    args.keys = keys.data_ptr<float>() + first * keys.stride(0);
    args.values = values.data_ptr<float>() + first * values.stride(0);
    args.seq_stride = keys.stride(0);
    args.head_stride = keys.stride(1);
    args.key_stride = context;
    args.len = lens.data();
    args.b = b;
    args.h = h;
    args.d = d;
    args.scale = 1.0f / std::sqrt(static_cast<float>(d));
    args.out = out.data_ptr<float>();
    DecodeAttention(args, GetParam());
    for (int64_t i = 0; i < b; ++i) {
      for (int64_t j = 0; j < h; ++j) {
        torch::Tensor k = keys[first + i][j].narrow(1, 0, lens[i]).t().to(torch::kDouble);
        torch::Tensor v = values[first + i][j].narrow(0, 0, lens[i]).to(torch::kDouble);
        torch::Tensor qi = q[i].narrow(0, j * d, d).to(torch::kDouble);
        torch::Tensor want = torch::matmul(torch::softmax(torch::mv(k, qi) * args.scale, 0), v);
        torch::Tensor got = out[i].narrow(0, j * d, d).to(torch::kDouble);
        EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-6))
            << "d=" << d << " sequence " << i << " head " << j << " (len " << lens[i]
            << "): max diff " << (got - want).abs().max().item<double>();
      }
    }
  }
}

// A sequence's result does not depend on the others in the call.
TEST_P(DecodeAttentionTest, ASequencesResultDoesNotDependOnTheBatch) {
  torch::manual_seed(5);
  const int64_t h = 6, d = 32, context = 64;
  const std::vector<int64_t> lens = {64, 9, 30, 1, 63};
  const int64_t b = static_cast<int64_t>(lens.size());
  torch::Tensor keys = torch::randn({b, h, d, context});
  torch::Tensor values = torch::randn({b, h, context, d});
  torch::Tensor q = torch::randn({b, h * d});
  auto run = [&](int64_t from, int64_t count) {
    torch::Tensor out = torch::empty({count, h * d});
    DecodeAttentionArgs args{q.data_ptr<float>() + from * h * d,
                             h * d,
                             keys.data_ptr<float>() + from * keys.stride(0),
                             values.data_ptr<float>() + from * values.stride(0),
                             keys.stride(0),
                             keys.stride(1),
                             context,
                             lens.data() + from,
                             count,
                             h,
                             d,
                             0.125f,
                             out.data_ptr<float>()};
    DecodeAttention(args, GetParam());
    return out;
  };
  torch::Tensor all = run(0, b);
  for (int64_t i = 0; i < b; ++i) EXPECT_TRUE(torch::equal(run(i, 1)[0], all[i])) << i;
}

INSTANTIATE_TEST_SUITE_P(Levels, DecodeAttentionTest, testing::EverySimdLevel(),
                         testing::SimdLevelParamName);

}  // namespace
}  // namespace moe
