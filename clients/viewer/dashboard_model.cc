#include "clients/viewer/dashboard_model.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace moe::viewer {
namespace {

// Layers of one token arrive close together but may interleave with other requests of the same
// batch; look this far back for the token's entry.
constexpr size_t kGroupLookback = 64;

}  // namespace

DashboardModel::DashboardModel(std::string model, std::string target, int granularity, int n_micro,
                               size_t max_recent)
    : n_micro_(std::max(0, n_micro)), max_recent_(std::max<size_t>(1, max_recent)) {
  state_.model = std::move(model);
  state_.target = std::move(target);
  state_.granularity = std::max(1, granularity);
}

void DashboardModel::Add(const moe::v1::RoutingEvent& event) {
  ++events_;
  state_.dropped = std::max(state_.dropped, event.dropped());
  if (event.has_load()) {
    have_snapshot_ = true;
    int64_t total = 0;
    for (const moe::v1::LayerLoad& l : event.load().layers()) {
      for (int64_t c : l.tokens()) total += c;
    }
    state_.tokens_per_second = event.load().tokens_per_second();
    // As the web page does: an idle interval keeps the last busy one on screen (marked idle),
    // so the bars do not blank out the moment traffic stops.
    idle_ = total == 0 && !state_.layers.empty();
    if (idle_) return;
    state_.layers.clear();
    for (const moe::v1::LayerLoad& l : event.load().layers()) {
      LayerLoadCounts counts;
      counts.layer = l.layer();
      counts.tokens.assign(l.tokens().begin(), l.tokens().end());
      state_.layers.push_back(std::move(counts));
    }
    std::sort(state_.layers.begin(), state_.layers.end(),
              [](const LayerLoadCounts& a, const LayerLoadCounts& b) { return a.layer < b.layer; });
  } else if (event.has_token()) {
    AddToken(event.token());
  } else if (event.has_placement()) {
    SetPlacement(event.placement().placement());
  }
}

void DashboardModel::SetPlacement(const moe::v1::Placement& placement) {
  if (placement.epoch() < state_.placement_epoch) return;  // an older answer, overtaken
  state_.placement_epoch = placement.epoch();
  state_.balancedness.clear();
  for (const moe::v1::LayerBalance& l : placement.layers()) {
    state_.balancedness.push_back(l.balancedness());
  }
}

void DashboardModel::AddToken(const moe::v1::TokenRouted& token) {
  const moe::v1::LayerRouting& routing = token.routing();
  TokenLayerExperts layer;
  layer.layer = routing.layer();
  for (const moe::v1::ExpertChoice& c : routing.experts()) layer.experts.push_back(c.id());

  if (!have_snapshot_) {
    std::vector<int64_t>& counts = token_counts_[routing.layer()];
    for (int id : layer.experts) {
      if (id < 0) continue;
      const size_t need = std::max<size_t>(static_cast<size_t>(id) + 1, n_micro_);
      if (counts.size() < need) counts.resize(need, 0);
      ++counts[id];
    }
    state_.layers.clear();
    for (const auto& [l, c] : token_counts_) state_.layers.push_back({l, c});
  }

  const std::pair<std::string, int> key(token.request_id(), token.position());
  RecentToken* entry = nullptr;
  for (size_t i = recent_keys_.size(), seen = 0; i > 0 && seen < kGroupLookback; --i, ++seen) {
    if (recent_keys_[i - 1] == key) {
      entry = &state_.recent[i - 1];
      break;
    }
  }
  if (entry == nullptr) {
    if (state_.recent.size() >= max_recent_) {
      state_.recent.erase(state_.recent.begin());
      recent_keys_.erase(recent_keys_.begin());
    }
    state_.recent.push_back(RecentToken{token.text(), token.is_prompt(), {}});
    recent_keys_.push_back(key);
    entry = &state_.recent.back();
  }
  auto pos = std::lower_bound(entry->layers.begin(), entry->layers.end(), layer.layer,
                              [](const TokenLayerExperts& a, int l) { return a.layer < l; });
  if (pos != entry->layers.end() && pos->layer == layer.layer) {
    *pos = std::move(layer);  // a repeated event (a replay loop) replaces, never duplicates
  } else {
    entry->layers.insert(pos, std::move(layer));
  }
}

DashboardState DashboardModel::State(bool color) const {
  DashboardState state = state_;
  state.color = color;
  if (idle_) absl::StrAppend(&state.model, " (idle: last busy interval)");
  if (n_micro_ > 0) {
    for (LayerLoadCounts& l : state.layers) {
      if (l.tokens.size() < static_cast<size_t>(n_micro_)) l.tokens.resize(n_micro_, 0);
    }
  }
  return state;
}

}  // namespace moe::viewer
