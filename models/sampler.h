// Next-token sampling: greedy, temperature, top-k, top-p, seeded. Torch-free.
#ifndef MOE_MODELS_SAMPLER_H_
#define MOE_MODELS_SAMPLER_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace moe {

struct SamplingParams {
  float temperature = 0.8f;  // 0 = greedy
  int top_k = 0;             // 0 = off
  float top_p = 1.0f;        // (0, 1]; 1 = off
  uint64_t seed = 0;
};

absl::Status ValidateSampling(const SamplingParams& params);

// Deterministic per seed. Not thread-safe; one per sequence.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // Picks a token id from logits [vocab]. Greedy picks the lowest id among equal maxima.
  int Sample(absl::Span<const float> logits);

 private:
  double NextUniform();  // [0, 1)
  SamplingParams params_;
  uint64_t state_;
};

}  // namespace moe

#endif  // MOE_MODELS_SAMPLER_H_
