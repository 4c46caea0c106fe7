#include "models/packed_matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "models/test_util.h"

namespace moe {
namespace {

std::vector<float> Random(int64_t n, std::mt19937& gen) {
  std::normal_distribution<float> normal;
  std::vector<float> v(n);
  for (float& f : v) f = normal(gen);
  return v;
}

// A kernel this CPU lacks runs the baseline, so every case runs (and can fail) everywhere.
class PackedMatrixTest : public ::testing::TestWithParam<SimdLevel> {};

// Against a double-precision product, over shapes that leave partial panels and row blocks,
// with and without bias, on strided rows; padding beyond n in each output row is untouched.
TEST_P(PackedMatrixTest, MatchesADoubleProduct) {
  std::mt19937 gen(7);
  for (auto [k, n] : std::vector<std::pair<int64_t, int64_t>>{
           {192, 576}, {384, 192}, {1, 1}, {5, 7}, {33, 17}, {64, 130}, {17, 272}}) {
    for (bool with_bias : {false, true}) {
      const std::vector<float> w = Random(k * n, gen), bias = Random(n, gen);
      PackedMatrix packed(w.data(), k, n, with_bias ? bias.data() : nullptr, GetParam());
      ASSERT_EQ(packed.k(), k);
      ASSERT_EQ(packed.n(), n);
      for (int64_t m : {1, 2, 3, 4, 5, 8, 11, 16, 33}) {
        const int64_t xs = k + 3, os = n + 5;
        const std::vector<float> x = Random(m * xs, gen);
        std::vector<float> out(m * os, -7.0f);
        packed.Multiply(x.data(), m, xs, out.data(), os);
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            double want = with_bias ? bias[j] : 0.0, scale = std::abs(want);
            for (int64_t q = 0; q < k; ++q) {
              want += static_cast<double>(x[i * xs + q]) * w[q * n + j];
              scale += std::abs(static_cast<double>(x[i * xs + q]) * w[q * n + j]);
            }
            ASSERT_NEAR(out[i * os + j], want, 1e-6 * scale + 1e-6)
                << "k=" << k << " n=" << n << " m=" << m << " row " << i << " col " << j;
          }
          for (int64_t j = n; j < os; ++j) ASSERT_EQ(out[i * os + j], -7.0f) << "padding written";
        }
      }
    }
  }
}

// A row's result is the same bits whatever else is in the call: the embedded engine and the
// cluster batch differently and must still agree exactly.
TEST_P(PackedMatrixTest, ARowsResultDoesNotDependOnTheOtherRows) {
  std::mt19937 gen(11);
  const int64_t k = 192, n = 4096;
  const std::vector<float> w = Random(k * n, gen), bias = Random(n, gen);
  PackedMatrix packed(w.data(), k, n, bias.data(), GetParam());
  const std::vector<float> x = Random(40 * k, gen);
  std::vector<float> alone(40 * n);
  for (int64_t i = 0; i < 40; ++i) {
    packed.Multiply(x.data() + i * k, 1, k, alone.data() + i * n, n);
  }
  for (int64_t m : {2, 3, 4, 7, 16, 32, 40}) {
    std::vector<float> batch(m * n);
    packed.Multiply(x.data(), m, k, batch.data(), n);
    for (int64_t i = 0; i < m * n; ++i) {
      ASSERT_EQ(batch[i], alone[i]) << "m=" << m << " row " << i / n << " col " << i % n;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Levels, PackedMatrixTest, testing::EverySimdLevel(),
                         testing::SimdLevelParamName);

}  // namespace
}  // namespace moe
