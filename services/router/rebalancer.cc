#include "services/router/rebalancer.h"

#include <algorithm>
#include <numeric>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace moe {
namespace {

// Pool loads of a placement; unusable pools are left out of the mean and max by the caller.
std::vector<double> PoolLoads(size_t n_pools, const std::vector<double>& load,
                              const std::vector<std::vector<int>>& hosts) {
  std::vector<double> pool(n_pools, 0.0);
  for (size_t k = 0; k < hosts.size(); ++k) {
    if (hosts[k].empty()) continue;
    const double share = load[k] / static_cast<double>(hosts[k].size());
    for (int p : hosts[k]) pool[p] += share;
  }
  return pool;
}

int Capacity(const PlannerPool& p, int n_keys) { return p.slots > 0 ? p.slots : n_keys; }

// Places `count[k]` replicas of every key (see the header's step 2), in two passes: first every
// key keeps its current hosts while they stay within `keep_limit` of load (no move costs
// nothing), then the replicas left go, heaviest first, to the least loaded pool with a free slot.
// Empty when they do not fit.
std::vector<std::vector<int>> Place(const std::vector<PlannerPool>& pools,
                                    const PlannerLayer& layer, const std::vector<int>& count,
                                    double keep_limit) {
  const int n_keys = static_cast<int>(layer.load.size());
  std::vector<int> order(n_keys);
  std::iota(order.begin(), order.end(), 0);
  // Heaviest per-replica load first; ties by key, so the plan is deterministic.
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return layer.load[a] / count[a] > layer.load[b] / count[b];
  });
  std::vector<double> pool_load(pools.size(), 0.0);
  std::vector<int> used(pools.size(), 0);
  std::vector<std::vector<int>> hosts(n_keys);
  auto take = [&](int k, int p) {
    hosts[k].push_back(p);
    pool_load[p] += layer.load[k] / count[k];
    ++used[p];
  };
  for (int k : order) {
    const double share = layer.load[k] / count[k];
    for (int p : layer.current[k]) {
      if (static_cast<int>(hosts[k].size()) >= count[k]) break;
      if (!pools[p].usable || used[p] >= Capacity(pools[p], n_keys)) continue;
      if (pool_load[p] > 0 && pool_load[p] + share > keep_limit) continue;
      take(k, p);
    }
  }
  for (int k : order) {
    while (static_cast<int>(hosts[k].size()) < count[k]) {
      // The least loaded pool; then the one with the most free slots; then the first.
      int best = -1;
      for (size_t p = 0; p < pools.size(); ++p) {
        if (!pools[p].usable || used[p] >= Capacity(pools[p], n_keys)) continue;
        if (std::find(hosts[k].begin(), hosts[k].end(), static_cast<int>(p)) != hosts[k].end()) {
          continue;
        }
        if (best < 0 ||
            std::make_tuple(pool_load[p], used[p]) < std::make_tuple(pool_load[best], used[best])) {
          best = static_cast<int>(p);
        }
      }
      if (best < 0) return {};
      take(k, best);
    }
  }
  for (auto& h : hosts) std::sort(h.begin(), h.end());
  return hosts;
}

}  // namespace

double MeanOverMax(const std::vector<PlannerPool>& pools, const std::vector<double>& pool_loads) {
  double sum = 0, max = 0;
  int n = 0;
  for (size_t p = 0; p < pools.size() && p < pool_loads.size(); ++p) {
    if (!pools[p].usable) continue;
    sum += pool_loads[p];
    max = std::max(max, pool_loads[p]);
    ++n;
  }
  if (n == 0 || max <= 0) return 1.0;
  return sum / n / max;
}

double Balancedness(const std::vector<PlannerPool>& pools, const std::vector<double>& load,
                    const std::vector<std::vector<int>>& hosts) {
  return MeanOverMax(pools, PoolLoads(pools.size(), load, hosts));
}

absl::StatusOr<LayerPlan> PlanLayer(const std::vector<PlannerPool>& pools,
                                    const PlannerLayer& layer, const PlannerOptions& options,
                                    const std::function<std::string(int key)>& key_name) {
  const int n_keys = static_cast<int>(layer.load.size());
  int usable = 0;
  int capacity = 0;
  for (const PlannerPool& p : pools) {
    if (!p.usable) continue;
    ++usable;
    capacity += Capacity(p, n_keys);
  }
  if (capacity < n_keys) {
    return absl::FailedPreconditionError(absl::StrCat(
        key_name(std::max(0, capacity)), ": no pool can host it (", usable, " usable pools with ",
        capacity, " expert slots in all for ", n_keys, " experts)"));
  }

  LayerPlan plan;
  plan.before = Balancedness(pools, layer.load, layer.current);
  bool valid = true;
  std::string invalid_why;
  for (int k = 0; k < n_keys && valid; ++k) {
    bool on_usable = false;
    for (int p : layer.current[k]) {
      if (pools[p].usable) {
        on_usable = true;
      } else if (valid) {
        valid = false;
        invalid_why = absl::StrCat(key_name(k), " is on a pool that cannot keep it");
      }
    }
    if (!on_usable && valid) {
      valid = false;
      invalid_why = absl::StrCat(key_name(k), " has no replica on a usable pool");
    }
  }

  double ideal = 0;
  for (double l : layer.load) ideal += l;
  ideal /= std::max(1, usable);
  const double keep_limit = ideal * (1 + options.stickiness);

  std::vector<int> count(n_keys, 1);
  std::vector<std::vector<int>> best = Place(pools, layer, count, keep_limit);
  if (best.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(key_name(0), ": the usable pools' slots cannot hold every expert"));
  }
  double best_score = Balancedness(pools, layer.load, best);
  for (int spare = capacity - n_keys; spare > 0; --spare) {
    int k_star = -1;
    for (int k = 0; k < n_keys; ++k) {
      if (count[k] >= usable || layer.load[k] <= 0) continue;
      if (k_star < 0 || layer.load[k] / count[k] > layer.load[k_star] / count[k_star]) k_star = k;
    }
    if (k_star < 0) break;
    ++count[k_star];
    std::vector<std::vector<int>> next = Place(pools, layer, count, keep_limit);
    const double score = next.empty() ? 0 : Balancedness(pools, layer.load, next);
    if (next.empty() || score < best_score + options.min_step) break;
    best = std::move(next);
    best_score = score;
  }

  std::vector<std::vector<int>> current_sorted = layer.current;
  for (auto& h : current_sorted) std::sort(h.begin(), h.end());
  if (best == current_sorted) {
    plan.hosts = current_sorted;
    plan.after = plan.before;
    plan.reason = "the placement is already the plan";
    return plan;
  }
  if (!valid) {
    plan.hosts = std::move(best);
    plan.after = best_score;
    plan.adopted = true;
    plan.reason = invalid_why;
    return plan;
  }
  if (best_score - plan.before < options.min_gain) {
    plan.hosts = current_sorted;
    plan.after = plan.before;
    plan.reason =
        absl::StrFormat("gain %.3f below %.3f", best_score - plan.before, options.min_gain);
    return plan;
  }
  plan.hosts = std::move(best);
  plan.after = best_score;
  plan.adopted = true;
  plan.reason = absl::StrFormat("balancedness %.3f -> %.3f", plan.before, best_score);
  return plan;
}

}  // namespace moe
