// Counters that forget: each value halves every `half_life`, so it measures recent work (a
// windowed load) without keeping a window of samples. Not thread-safe: the owner locks.
#ifndef MOE_SERVICES_ROUTER_DECAYING_COUNTERS_H_
#define MOE_SERVICES_ROUTER_DECAYING_COUNTERS_H_

#include <cmath>
#include <functional>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace moe {

using Clock = std::function<absl::Time()>;
inline Clock RealClock() {
  return [] { return absl::Now(); };
}

class DecayingCounters {
 public:
  DecayingCounters(size_t n, absl::Duration half_life, absl::Time now)
      : half_life_(half_life), values_(n, 0.0), decayed_at_(now) {}

  // Brings every value to `now` (earlier times are ignored).
  void DecayTo(absl::Time now) {
    if (now <= decayed_at_) return;
    const double factor = std::exp2(-absl::FDivDuration(now - decayed_at_, half_life_));
    for (double& v : values_) v *= factor;
    decayed_at_ = now;
  }
  // Grows to at least n counters (new ones start at zero).
  void Resize(size_t n) {
    if (n > values_.size()) values_.resize(n, 0.0);
  }
  size_t size() const { return values_.size(); }
  double& operator[](size_t i) { return values_[i]; }
  double operator[](size_t i) const { return values_[i]; }
  const std::vector<double>& values() const { return values_; }

 private:
  absl::Duration half_life_;
  std::vector<double> values_;
  absl::Time decayed_at_;
};

}  // namespace moe

#endif  // MOE_SERVICES_ROUTER_DECAYING_COUNTERS_H_
