#include "services/router/load_meter.h"

#include <utility>

namespace moe {

LoadMeter::LoadMeter(int n_layers, int n_keys, absl::Duration half_life, Clock clock)
    : n_keys_(n_keys), clock_(std::move(clock)) {
  const absl::Time now = clock_();
  for (int l = 0; l < n_layers; ++l) {
    key_pools_.emplace_back(n_keys, DecayingCounters(0, half_life, now));
  }
}

void LoadMeter::Add(int layer, absl::Span<const Work> work) {
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  for (const Work& w : work) {
    if (w.key < 0 || w.key >= n_keys_ || w.pool < 0) continue;
    DecayingCounters& kp = key_pools_[layer][w.key];
    kp.DecayTo(now);
    kp.Resize(w.pool + 1);
    kp[w.pool] += w.tokens;
  }
}

std::vector<double> LoadMeter::KeyLoads(int layer) const {
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  std::vector<double> out(n_keys_, 0.0);
  for (int k = 0; k < n_keys_; ++k) {
    DecayingCounters& kp = key_pools_[layer][k];
    kp.DecayTo(now);
    for (double t : kp.values()) out[k] += t;
  }
  return out;
}

std::vector<double> LoadMeter::PoolLoads(int layer, int n_pools) const {
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  std::vector<double> out(n_pools, 0.0);
  for (DecayingCounters& kp : key_pools_[layer]) {
    kp.DecayTo(now);
    for (size_t p = 0; p < kp.size() && p < out.size(); ++p) out[p] += kp[p];
  }
  return out;
}

std::vector<double> LoadMeter::KeyPoolLoads(int layer, int key, int n_pools) const {
  absl::MutexLock lock(&mu_);
  DecayingCounters& kp = key_pools_[layer][key];
  kp.DecayTo(clock_());
  std::vector<double> out = kp.values();
  out.resize(n_pools, 0.0);
  return out;
}

}  // namespace moe
