#include "services/router/load_meter.h"

#include <utility>

namespace moe {

LoadMeter::LoadMeter(int n_layers, int n_keys, absl::Duration half_life, Clock clock)
    : n_keys_(n_keys), clock_(std::move(clock)) {
  const absl::Time now = clock_();
  for (int l = 0; l < n_layers; ++l) {
    keys_.emplace_back(n_keys, half_life, now);
    pools_.emplace_back(0, half_life, now);
    key_pools_.emplace_back(n_keys, DecayingCounters(0, half_life, now));
  }
}

void LoadMeter::Add(int layer, absl::Span<const Work> work) {
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  DecayingCounters& keys = keys_[layer];
  DecayingCounters& pools = pools_[layer];
  keys.DecayTo(now);
  pools.DecayTo(now);
  for (const Work& w : work) {
    if (w.key < 0 || w.key >= n_keys_ || w.pool < 0) continue;
    keys[w.key] += w.tokens;
    pools.Resize(w.pool + 1);
    pools[w.pool] += w.tokens;
    DecayingCounters& kp = key_pools_[layer][w.key];
    kp.DecayTo(now);
    kp.Resize(w.pool + 1);
    kp[w.pool] += w.tokens;
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

namespace moe {

std::vector<double> LoadMeter::KeyPoolLoads(int layer, int key, int n_pools) const {
  absl::MutexLock lock(&mu_);
  DecayingCounters& kp = key_pools_[layer][key];
  kp.DecayTo(clock_());
  std::vector<double> out = kp.values();
  out.resize(n_pools, 0.0);
  return out;
}

}  // namespace moe
