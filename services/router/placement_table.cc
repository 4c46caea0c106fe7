#include "services/router/placement_table.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace moe {

PlacementTable::PlacementTable(const ModelConfig& config, const ClusterSpec& start)
    : config_(config), n_keys_(config.n_experts + config.n_shared) {
  absl::MutexLock lock(&mu_);
  for (size_t p = 0; p < start.pools.size(); ++p) {
    const PoolSpec& spec = start.pools[p];
    pools_.push_back({spec.name, spec.address, "", 0, false});
    for (const auto& [l, e] : spec.routed) {
      replicas_[{l, e, static_cast<int>(p)}] = ReplicaState::kReady;
    }
    for (const auto& [l, s] : spec.shared) {
      replicas_[{l, config.n_experts + s, static_cast<int>(p)}] = ReplicaState::kReady;
    }
  }
  PublishLocked();
}

std::string PlacementTable::KeyName(int layer, int key) const {
  return key < config_.n_experts
             ? absl::StrCat("layer ", layer, " expert ", key)
             : absl::StrCat("layer ", layer, " shared expert ", key - config_.n_experts);
}

void PlacementTable::PublishLocked() {
  auto v = std::make_shared<RoutingView>();
  v->epoch = epoch_;
  for (const PoolEntry& p : pools_) {
    v->names.push_back(p.name);
    v->addresses.push_back(p.removed ? "" : p.address);  // nobody dials a removed pool
  }
  v->hosts.assign(config_.n_layers, std::vector<std::vector<int>>(n_keys_));
  for (const auto& [k, state] : replicas_) {
    const auto [l, key, pool] = k;
    if (state == ReplicaState::kReady) v->hosts[l][key].push_back(pool);
  }
  view_ = std::move(v);
}

std::shared_ptr<const RoutingView> PlacementTable::view() const {
  absl::MutexLock lock(&mu_);
  return view_;
}

uint64_t PlacementTable::epoch() const {
  absl::MutexLock lock(&mu_);
  return epoch_;
}

int PlacementTable::pool_count() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(pools_.size());
}

PoolEntry PlacementTable::pool(int index) const {
  absl::MutexLock lock(&mu_);
  return pools_[index];
}

std::vector<PoolEntry> PlacementTable::pools() const {
  absl::MutexLock lock(&mu_);
  return pools_;
}

absl::StatusOr<int> PlacementTable::FindPool(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> names;
  for (size_t i = 0; i < pools_.size(); ++i) {
    if (pools_[i].removed) continue;
    if (pools_[i].name == name) return static_cast<int>(i);
    names.push_back(pools_[i].name);
  }
  return absl::NotFoundError(absl::StrCat(
      "pool \"", name, "\": not in the placement (pools: ", absl::StrJoin(names, ", "), ")"));
}

int PlacementTable::UpsertPool(const PoolEntry& entry) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < pools_.size(); ++i) {
    if (pools_[i].name != entry.name) continue;
    const bool moved = pools_[i].address != entry.address || pools_[i].removed;
    pools_[i] = entry;
    pools_[i].removed = false;
    if (moved) {
      ++epoch_;
      PublishLocked();
    }
    return static_cast<int>(i);
  }
  pools_.push_back(entry);
  ++epoch_;
  PublishLocked();
  return static_cast<int>(pools_.size()) - 1;
}

void PlacementTable::RemovePool(int pool) {
  absl::MutexLock lock(&mu_);
  for (auto it = replicas_.begin(); it != replicas_.end();) {
    it = std::get<2>(it->first) == pool ? replicas_.erase(it) : std::next(it);
  }
  pools_[pool].removed = true;
  pools_[pool].draining = false;
  ++epoch_;
  PublishLocked();
}

void PlacementTable::SetDescribed(int pool, const std::string& device, int expert_slots) {
  absl::MutexLock lock(&mu_);
  pools_[pool].device = device;
  pools_[pool].expert_slots = expert_slots;
}

void PlacementTable::SetDraining(int pool, bool draining) {
  absl::MutexLock lock(&mu_);
  pools_[pool].draining = draining;
}

std::vector<PlacementTable::Replica> PlacementTable::replicas() const {
  absl::MutexLock lock(&mu_);
  std::vector<Replica> out;
  for (const auto& [k, state] : replicas_) {
    const auto [l, key, pool] = k;
    out.push_back({l, key, pool, state});
  }
  return out;
}

std::vector<PlacementTable::Replica> PlacementTable::replicas_of_pool(int pool) const {
  std::vector<Replica> out;
  for (const Replica& r : replicas()) {
    if (r.pool == pool) out.push_back(r);
  }
  return out;
}

std::vector<int> PlacementTable::Hosts(int layer, int key, ReplicaState state) const {
  absl::MutexLock lock(&mu_);
  std::vector<int> out;
  for (auto it = replicas_.lower_bound({layer, key, 0});
       it != replicas_.end() && std::get<0>(it->first) == layer && std::get<1>(it->first) == key;
       ++it) {
    if (it->second == state) out.push_back(std::get<2>(it->first));
  }
  return out;
}

uint64_t PlacementTable::Apply(absl::Span<const Change> changes) {
  absl::MutexLock lock(&mu_);
  bool changed = false;
  for (const Change& c : changes) {
    const std::tuple<int, int, int> k{c.layer, c.key, c.pool};
    auto it = replicas_.find(k);
    if (!c.state.has_value()) {
      if (it != replicas_.end()) {
        replicas_.erase(it);
        changed = true;
      }
    } else if (it == replicas_.end() || it->second != *c.state) {
      replicas_[k] = *c.state;
      changed = true;
    }
  }
  if (changed) {
    ++epoch_;
    PublishLocked();
  }
  return epoch_;
}

}  // namespace moe
