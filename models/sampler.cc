#include "models/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "models/splitmix.h"

namespace moe {

absl::Status ValidateSampling(const SamplingParams& p) {
  if (!(p.temperature >= 0) || !std::isfinite(p.temperature)) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature: must be >= 0, got ", p.temperature));
  }
  if (p.top_k < 0) {
    return absl::InvalidArgumentError(absl::StrCat("top_k: must be >= 0, got ", p.top_k));
  }
  if (!(p.top_p > 0 && p.top_p <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p: must be in (0, 1], got ", p.top_p));
  }
  if (!(p.presence_penalty >= -2 && p.presence_penalty <= 2)) {
    return absl::InvalidArgumentError(
        absl::StrCat("presence_penalty: must be in [-2, 2], got ", p.presence_penalty));
  }
  if (!(p.frequency_penalty >= -2 && p.frequency_penalty <= 2)) {
    return absl::InvalidArgumentError(
        absl::StrCat("frequency_penalty: must be in [-2, 2], got ", p.frequency_penalty));
  }
  if (!(p.repetition_penalty > 0 && p.repetition_penalty <= 2)) {
    return absl::InvalidArgumentError(
        absl::StrCat("repetition_penalty: must be in (0, 2], got ", p.repetition_penalty));
  }
  if (p.logprobs < -1 || p.logprobs > kMaxLogprobs) {
    return absl::InvalidArgumentError(
        absl::StrCat("logprobs: must be in [0, ", kMaxLogprobs, "], got ", p.logprobs));
  }
  return absl::OkStatus();
}

Sampler::Sampler(const SamplingParams& params, absl::Span<const int> prompt)
    : params_(params), state_(params.seed) {
  if (params_.repetition_penalty != 1) seen_.insert(prompt.begin(), prompt.end());
}

double Sampler::NextUniform() {
  // SplitMix64 over a Weyl sequence: tiny, fast, and identical on every platform.
  const uint64_t x = state_;
  state_ += 0x9e3779b97f4a7c15ull;
  return static_cast<double>(SplitMix64(x) >> 11) * 0x1.0p-53;
}

bool Sampler::penalized() const {
  return params_.presence_penalty != 0 || params_.frequency_penalty != 0 ||
         params_.repetition_penalty != 1;
}

void Sampler::Penalize(std::vector<float>& logits) const {
  // vLLM's order: repetition first, then frequency and presence.
  if (params_.repetition_penalty != 1) {
    const float r = params_.repetition_penalty;
    for (int id : seen_) {
      float& l = logits[id];
      l = l > 0 ? l / r : l * r;
    }
  }
  if (params_.presence_penalty != 0 || params_.frequency_penalty != 0) {
    for (const auto& [id, count] : generated_counts_) {
      logits[id] -=
          params_.frequency_penalty * static_cast<float>(count) + params_.presence_penalty;
    }
  }
}

int Sampler::Sample(absl::Span<const float> logits) {
  int chosen;
  if (penalized()) {
    scratch_.assign(logits.begin(), logits.end());
    Penalize(scratch_);
    chosen = Draw(scratch_);
    if (params_.repetition_penalty != 1) seen_.insert(chosen);
    if (params_.presence_penalty != 0 || params_.frequency_penalty != 0) {
      ++generated_counts_[chosen];
    }
  } else {
    chosen = Draw(logits);
  }
  if (params_.logprobs >= 0) ComputeLogprobs(logits, chosen);
  return chosen;
}

void Sampler::ComputeLogprobs(absl::Span<const float> logits, int chosen) {
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - max_logit);
  const double log_z = max_logit + std::log(sum);
  last_logprobs_.logprob = static_cast<float>(logits[chosen] - log_z);
  last_logprobs_.top.clear();
  const int n = static_cast<int>(logits.size());
  const int k = std::min(params_.logprobs, n);
  if (k == 0) return;
  std::vector<int> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int a, int b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  for (int i = 0; i < k; ++i) {
    last_logprobs_.top.push_back({ids[i], static_cast<float>(logits[ids[i]] - log_z)});
  }
}

int Sampler::Draw(absl::Span<const float> logits) {
  const int n = static_cast<int>(logits.size());
  if (params_.temperature == 0) {
    return static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  std::vector<int> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  int keep = n;
  if (params_.top_k > 0 && params_.top_k < n) keep = params_.top_k;
  // Highest logits first; ties in id order so the result is the same everywhere.
  auto by_logit = [&](int a, int b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  if (keep < n || params_.top_p < 1) {
    std::partial_sort(ids.begin(), ids.begin() + keep, ids.end(), by_logit);
  }
  ids.resize(keep);
  const double max_logit = logits[*std::max_element(
      ids.begin(), ids.end(), [&](int a, int b) { return logits[a] < logits[b]; })];
  std::vector<double> p(keep);
  double total = 0;
  for (int i = 0; i < keep; ++i) {
    p[i] = std::exp((logits[ids[i]] - max_logit) / params_.temperature);
    total += p[i];
  }
  if (params_.top_p < 1) {
    // Smallest prefix (ids are sorted) whose probability reaches top_p.
    double cum = 0;
    int cut = keep;
    for (int i = 0; i < keep; ++i) {
      cum += p[i] / total;
      if (cum >= params_.top_p) {
        cut = i + 1;
        break;
      }
    }
    p.resize(cut);
    ids.resize(cut);
    total = std::accumulate(p.begin(), p.end(), 0.0);
  }
  double u = NextUniform() * total;
  for (size_t i = 0; i < p.size(); ++i) {
    if (u < p[i]) return ids[i];
    u -= p[i];
  }
  return ids.back();
}

}  // namespace moe
