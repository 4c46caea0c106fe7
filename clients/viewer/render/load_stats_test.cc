// Balance figures against hand-computed values.
#include "clients/viewer/render/load_stats.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace moe::viewer {
namespace {

TEST(BaseExpertCountsTest, SumsMicroExpertsOfEachBaseExpert) {
  const std::vector<int64_t> micro = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(BaseExpertCounts(micro, 2), (std::vector<int64_t>{3, 7, 11}));
  EXPECT_EQ(BaseExpertCounts(micro, 3), (std::vector<int64_t>{6, 15}));
  EXPECT_EQ(BaseExpertCounts(micro, 1), micro);
}

TEST(BaseExpertCountsTest, TrailingPartialGroupIsItsOwnExpert) {
  const std::vector<int64_t> micro = {1, 2, 3};
  EXPECT_EQ(BaseExpertCounts(micro, 2), (std::vector<int64_t>{3, 3}));
}

TEST(ComputeLoadBalanceTest, MatchesHandComputedCase) {
  // mean 5; deviations -3 -1 1 3; population variance (9+1+1+9)/4 = 5.
  const std::vector<int64_t> counts = {2, 4, 6, 8};
  const LoadBalance balance = ComputeLoadBalance(counts);
  EXPECT_EQ(balance.total, 20);
  EXPECT_NEAR(balance.cv, std::sqrt(5.0) / 5.0, 1e-12);
  EXPECT_NEAR(balance.max_over_mean, 8.0 / 5.0, 1e-12);
}

TEST(ComputeLoadBalanceTest, OneHotLoadHasCvSqrtNMinusOneAndMaxOverMeanN) {
  // mean 3; deviations -3 -3 -3 9; variance (27+81)/4 = 27; std/mean = sqrt(27)/3 = sqrt(3).
  const std::vector<int64_t> counts = {0, 0, 0, 12};
  const LoadBalance balance = ComputeLoadBalance(counts);
  EXPECT_NEAR(balance.cv, std::sqrt(3.0), 1e-12);
  EXPECT_NEAR(balance.max_over_mean, 4.0, 1e-12);
}

TEST(ComputeLoadBalanceTest, UniformLoadIsPerfectlyBalanced) {
  const std::vector<int64_t> counts = {5, 5, 5, 5};
  const LoadBalance balance = ComputeLoadBalance(counts);
  EXPECT_DOUBLE_EQ(balance.cv, 0.0);
  EXPECT_DOUBLE_EQ(balance.max_over_mean, 1.0);
}

TEST(ComputeLoadBalanceTest, SharesNotCountsDecide) {
  const std::vector<int64_t> small = {1, 2, 3};
  const std::vector<int64_t> large = {100, 200, 300};
  EXPECT_NEAR(ComputeLoadBalance(small).cv, ComputeLoadBalance(large).cv, 1e-12);
  EXPECT_NEAR(ComputeLoadBalance(small).max_over_mean, ComputeLoadBalance(large).max_over_mean,
              1e-12);
}

TEST(ComputeLoadBalanceTest, AllZeroIsZeroNotNaN) {
  const std::vector<int64_t> counts = {0, 0, 0};
  const LoadBalance balance = ComputeLoadBalance(counts);
  EXPECT_EQ(balance.total, 0);
  EXPECT_EQ(balance.cv, 0.0);
  EXPECT_EQ(balance.max_over_mean, 0.0);
  EXPECT_FALSE(std::isnan(balance.cv));
}

TEST(ComputeLoadBalanceTest, NoExpertsIsZero) {
  const LoadBalance balance = ComputeLoadBalance({});
  EXPECT_EQ(balance.cv, 0.0);
  EXPECT_EQ(balance.max_over_mean, 0.0);
}

}  // namespace
}  // namespace moe::viewer
