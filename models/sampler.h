// Next-token sampling: penalties (presence, frequency, repetition), greedy, temperature, top-k,
// top-p, seeded; and the log-probabilities of each draw. Torch-free.
#ifndef MOE_MODELS_SAMPLER_H_
#define MOE_MODELS_SAMPLER_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/types/span.h"

namespace moe {

inline constexpr int kMaxLogprobs = 20;

struct SamplingParams {
  float temperature = 0.8f;  // 0 = greedy
  int top_k = 0;             // 0 = off
  float top_p = 1.0f;        // (0, 1]; 1 = off
  uint64_t seed = 0;
  // OpenAI's definitions, over the tokens generated so far (not the prompt): a token's logit
  // loses presence_penalty once it has appeared and frequency_penalty per appearance. [-2, 2].
  float presence_penalty = 0;
  float frequency_penalty = 0;
  // Hugging Face's and vLLM's definition, over prompt and generated tokens: a positive logit is
  // divided by it, a negative one multiplied. (0, 2]; 1 = off; applied before the two above.
  float repetition_penalty = 1;
  // -1 = off; else each draw also reports its log-probability and those of the `logprobs` most
  // likely tokens, in [0, kMaxLogprobs].
  int logprobs = -1;
};

// INVALID_ARGUMENT naming the field.
absl::Status ValidateSampling(const SamplingParams& params);

struct LogprobEntry {
  int token_id = 0;
  float logprob = 0;
};

// The log-probabilities of one draw: log-softmax of the model's own logits (before penalties,
// temperature, top-k and top-p, as vLLM reports them), so they say what the model predicted.
struct TokenLogprobs {
  float logprob = 0;              // of the token drawn
  std::vector<LogprobEntry> top;  // the most likely tokens, most likely first (ties: lower id)
};

// Deterministic per seed. Not thread-safe; one per sequence.
class Sampler {
 public:
  // `prompt`: the sequence's prompt tokens, which the repetition penalty also covers.
  explicit Sampler(const SamplingParams& params, absl::Span<const int> prompt = {});
  // Picks a token id from logits [vocab] and remembers it (for the penalties). Greedy picks the
  // lowest id among equal maxima.
  int Sample(absl::Span<const float> logits);
  // The log-probabilities of the last Sample's token. Empty unless params.logprobs >= 0.
  const TokenLogprobs& last_logprobs() const { return last_logprobs_; }

 private:
  bool penalized() const;
  void Penalize(std::vector<float>& logits) const;
  int Draw(absl::Span<const float> logits);
  void ComputeLogprobs(absl::Span<const float> logits, int chosen);
  double NextUniform();  // [0, 1)

  SamplingParams params_;
  uint64_t state_;
  absl::flat_hash_map<int, int> generated_counts_;  // token -> times drawn so far
  absl::flat_hash_set<int> seen_;                   // prompt and drawn tokens (repetition)
  std::vector<float> scratch_;
  TokenLogprobs last_logprobs_;
};

}  // namespace moe

#endif  // MOE_MODELS_SAMPLER_H_
