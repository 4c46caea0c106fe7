// Coefficient of variation and max/mean of per-expert load; see load_stats.h.
#include "clients/viewer/render/load_stats.h"

#include <algorithm>
#include <cmath>

namespace moe::viewer {

std::vector<int64_t> BaseExpertCounts(absl::Span<const int64_t> micro_counts, int granularity) {
  const int m = std::max(granularity, 1);
  std::vector<int64_t> base((micro_counts.size() + m - 1) / m, 0);
  for (size_t id = 0; id < micro_counts.size(); ++id) base[id / m] += micro_counts[id];
  return base;
}

LoadBalance ComputeLoadBalance(absl::Span<const int64_t> base_counts) {
  LoadBalance balance;
  if (base_counts.empty()) return balance;
  int64_t max_count = 0;
  for (int64_t c : base_counts) {
    balance.total += c;
    max_count = std::max(max_count, c);
  }
  if (balance.total <= 0) return balance;
  const double n = static_cast<double>(base_counts.size());
  const double mean = static_cast<double>(balance.total) / n;
  double sum_sq = 0.0;
  for (int64_t c : base_counts) {
    const double d = static_cast<double>(c) - mean;
    sum_sq += d * d;
  }
  balance.cv = std::sqrt(sum_sq / n) / mean;
  balance.max_over_mean = static_cast<double>(max_count) / mean;
  return balance;
}

}  // namespace moe::viewer
