#include "services/router/replica_selector.h"

#include <cmath>
#include <utility>

namespace moe {

ReplicaSelector::ReplicaSelector(int n_pools, absl::Duration half_life, Clock clock)
    : half_life_(half_life),
      clock_(std::move(clock)),
      load_(n_pools, 0.0),
      decayed_at_(clock_()),
      healthy_(n_pools, true) {}

void ReplicaSelector::DecayLocked() const {
  const absl::Time now = clock_();
  if (now <= decayed_at_) return;
  const double factor = std::exp2(-absl::FDivDuration(now - decayed_at_, half_life_));
  for (double& l : load_) l *= factor;
  decayed_at_ = now;
}

int ReplicaSelector::Pick(absl::Span<const int> hosts, double tokens) {
  absl::MutexLock lock(&mu_);
  DecayLocked();
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
  DecayLocked();
  return load_[pool];
}

}  // namespace moe
