#include "models/layer_norm.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/test_util.h"

namespace moe {
namespace {

class LayerNormTest : public ::testing::TestWithParam<SimdLevel> {};

// Against LibTorch's layer_norm (in double), for widths with and without a partial vector, rows
// far from zero mean, and in place.
TEST_P(LayerNormTest, MatchesLibTorchsLayerNorm) {
  torch::manual_seed(4);
  for (int64_t c : {192, 48, 13, 8, 1}) {
    const int64_t rows = 5;
    torch::Tensor x = torch::randn({rows, c}) * 3 + 40;
    torch::Tensor w = torch::randn({c}), b = torch::randn({c});
    torch::Tensor want = torch::layer_norm(x.to(torch::kDouble), {c}, w.to(torch::kDouble),
                                           b.to(torch::kDouble), 1e-5);
    torch::Tensor got = torch::empty({rows, c});
    LayerNormRows(x.data_ptr<float>(), rows, c, w.data_ptr<float>(), b.data_ptr<float>(), 1e-5f,
                  got.data_ptr<float>(), GetParam());
    EXPECT_TRUE(torch::allclose(got.to(torch::kDouble), want, 1e-5, 2e-5))
        << "c=" << c << ": max diff " << (got.to(torch::kDouble) - want).abs().max().item<double>();
    torch::Tensor in_place = x.clone();
    LayerNormRows(in_place.data_ptr<float>(), rows, c, w.data_ptr<float>(), b.data_ptr<float>(),
                  1e-5f, in_place.data_ptr<float>(), GetParam());
    EXPECT_TRUE(torch::equal(in_place, got)) << "c=" << c;
  }
}

INSTANTIATE_TEST_SUITE_P(Levels, LayerNormTest, testing::EverySimdLevel(),
                         testing::SimdLevelParamName);

}  // namespace
}  // namespace moe
