// Shared helpers for the model tests: small configs and random models.
#ifndef MOE_MODELS_TEST_UTIL_H_
#define MOE_MODELS_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "models/config.h"
#include "models/simd.h"

namespace moe::testing {

// The instruction sets of the hand-written kernels, for tests parameterized over them (a level
// the CPU lacks runs the baseline, so every case runs everywhere):
//   INSTANTIATE_TEST_SUITE_P(Levels, SomeTest, EverySimdLevel(), SimdLevelParamName);
inline auto EverySimdLevel() {
  return ::testing::Values(SimdLevel::kAvx512, SimdLevel::kAvx2, SimdLevel::kBaseline);
}
inline std::string SimdLevelParamName(const ::testing::TestParamInfo<SimdLevel>& info) {
  return SimdLevelName(info.param);
}

// A tiny model that exercises every feature: micro-experts and a shared expert.
inline ModelConfig TinyConfig() {
  ModelConfig c;
  c.name = "tiny";
  c.vocab_size = 300;
  c.d_model = 32;
  c.n_heads = 4;
  c.n_layers = 2;
  c.context_length = 48;
  c.n_experts = 4;
  c.n_shared = 1;
  c.granularity = 2;
  c.top_k = 3;
  c.d_ff = 64;
  return c;
}

// A fresh directory under the test's temporary directory.
inline std::string TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::filesystem::path p =
      std::filesystem::path(base ? base : std::filesystem::temp_directory_path()) /
      ("moe_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

}  // namespace moe::testing

#endif  // MOE_MODELS_TEST_UTIL_H_
