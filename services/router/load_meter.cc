#include "services/router/load_meter.h"

#include <utility>

namespace moe {

LoadMeter::LoadMeter(int n_layers, int n_keys, absl::Duration half_life, Clock clock)
    : n_keys_(n_keys), clock_(std::move(clock)) {
  const absl::Time now = clock_();
  for (int l = 0; l < n_layers; ++l) {
    keys_.emplace_back(n_keys, half_life, now);
    pools_.emplace_back(0, half_life, now);
  }
}

void LoadMeter::Add(int layer, absl::Span<const double> per_key,
                    absl::Span<const std::pair<int, double>> per_pool) {
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  DecayingCounters& keys = keys_[layer];
  keys.DecayTo(now);
  for (int k = 0; k < n_keys_ && k < static_cast<int>(per_key.size()); ++k) keys[k] += per_key[k];
  DecayingCounters& pools = pools_[layer];
  pools.DecayTo(now);
  for (const auto& [pool, tokens] : per_pool) {
    pools.Resize(pool + 1);
    pools[pool] += tokens;
  }
}

std::vector<double> LoadMeter::KeyLoads(int layer) const {
  absl::MutexLock lock(&mu_);
  keys_[layer].DecayTo(clock_());
  return keys_[layer].values();
}

std::vector<double> LoadMeter::PoolLoads(int layer, int n_pools) const {
  absl::MutexLock lock(&mu_);
  pools_[layer].DecayTo(clock_());
  std::vector<double> out = pools_[layer].values();
  out.resize(n_pools, 0.0);
  return out;
}

}  // namespace moe
