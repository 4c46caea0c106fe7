#include "models/gelu.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "models/test_util.h"

namespace moe {
namespace {

class GeluTest : public ::testing::TestWithParam<SimdLevel> {};

// Against LibTorch's exact GELU (in double) over [-12, 12] and beyond, on lengths that end in
// a partial vector; the infinities map as GELU's limits do.
TEST_P(GeluTest, MatchesLibTorchsExactGelu) {
  for (int64_t n : {1, 7, 8, 9, 4001}) {
    torch::Tensor x = torch::linspace(-12, 12, n, torch::kFloat);
    if (n == 4001) x.index_put_({torch::indexing::Slice(0, 100)}, torch::randn({100}) * 50);
    torch::Tensor want = torch::gelu(x.to(torch::kDouble));
    torch::Tensor got = x.clone();
    GeluInPlace(got.data_ptr<float>(), n, GetParam());
    const double diff = (got.to(torch::kDouble) - want).abs().max().item<double>();
    EXPECT_LT(diff, 2e-6) << "n=" << n;
  }
  float edge[3] = {-std::numeric_limits<float>::infinity(), 0.0f,
                   std::numeric_limits<float>::infinity()};
  GeluInPlace(edge, 3, GetParam());
  EXPECT_EQ(edge[1], 0.0f);
  EXPECT_EQ(edge[2], std::numeric_limits<float>::infinity());
}

INSTANTIATE_TEST_SUITE_P(Levels, GeluTest, testing::EverySimdLevel(), testing::SimdLevelParamName);

}  // namespace
}  // namespace moe
