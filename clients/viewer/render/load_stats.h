// Balance figures of one layer's expert load, shared by the terminal dashboard and the flow GIF so
// both report the same numbers the router's LoadSnapshot does. Pure functions; thread-safe.
#ifndef MOE_CLIENTS_VIEWER_RENDER_LOAD_STATS_H_
#define MOE_CLIENTS_VIEWER_RENDER_LOAD_STATS_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace moe::viewer {

struct LoadBalance {
  int64_t total = 0;
  // Coefficient of variation of the per-base-expert token share: population standard deviation
  // over mean. Shares are counts over the total, so this equals std/mean of the counts. 0 when no
  // expert saw a token (balanced by definition, and never NaN).
  double cv = 0.0;
  // The busiest base expert's tokens over the mean; 1 is perfect balance, n_experts means one
  // expert took everything. 0 when no expert saw a token.
  double max_over_mean = 0.0;
};

// Sums per-flat-micro-expert counts (id = expert * granularity + micro) into per-base-expert
// counts. A trailing partial group (size not a multiple of granularity) becomes its own expert.
// REQUIRES: granularity >= 1.
std::vector<int64_t> BaseExpertCounts(absl::Span<const int64_t> micro_counts, int granularity);

// REQUIRES: counts are non-negative.
LoadBalance ComputeLoadBalance(absl::Span<const int64_t> base_counts);

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_RENDER_LOAD_STATS_H_
