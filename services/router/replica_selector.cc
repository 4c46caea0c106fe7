#include "services/router/replica_selector.h"

#include <utility>

namespace moe {

ReplicaSelector::ReplicaSelector(int n_pools, absl::Duration half_life, Clock clock)
    : clock_(std::move(clock)), load_(n_pools, half_life, clock_()), healthy_(n_pools, true) {}

void ReplicaSelector::Resize(int n_pools) {
  absl::MutexLock lock(&mu_);
  load_.Resize(n_pools);
  if (static_cast<size_t>(n_pools) > healthy_.size()) healthy_.resize(n_pools, true);
}

int ReplicaSelector::Pick(absl::Span<const int> hosts, double tokens) {
  absl::MutexLock lock(&mu_);
  load_.DecayTo(clock_());
  int best = -1;
  for (int h : hosts) {
    if (!healthy_[h]) continue;
    if (best < 0 || load_[h] < load_[best]) best = h;
  }
  if (best >= 0) load_[best] += tokens;
  return best;
}

bool ReplicaSelector::SetHealthy(int pool, bool healthy) {
  absl::MutexLock lock(&mu_);
  const bool changed = healthy_[pool] != healthy;
  healthy_[pool] = healthy;
  return changed;
}

bool ReplicaSelector::healthy(int pool) const {
  absl::MutexLock lock(&mu_);
  return healthy_[pool];
}

double ReplicaSelector::load(int pool) const {
  absl::MutexLock lock(&mu_);
  load_.DecayTo(clock_());
  return load_[pool];
}

}  // namespace moe
