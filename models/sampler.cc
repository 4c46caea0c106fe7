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
  return absl::OkStatus();
}

Sampler::Sampler(const SamplingParams& params) : params_(params), state_(params.seed) {}

double Sampler::NextUniform() {
  // SplitMix64 over a Weyl sequence: tiny, fast, and identical on every platform.
  const uint64_t x = state_;
  state_ += 0x9e3779b97f4a7c15ull;
  return static_cast<double>(SplitMix64(x) >> 11) * 0x1.0p-53;
}

int Sampler::Sample(absl::Span<const float> logits) {
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
