#include "clients/moectl/placement_text.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace moe::cli {
namespace {

std::string Hosted(const moe::v1::HostedExperts& h) {
  std::vector<std::string> ids;
  for (int e : h.experts()) ids.push_back(absl::StrCat(e));
  for (int s : h.shared()) ids.push_back(absl::StrCat("s", s));
  return ids.empty() ? "-" : absl::StrJoin(ids, " ");
}

}  // namespace

std::string FormatPlacement(const moe::v1::Placement& p) {
  std::string out = absl::StrCat("epoch ", p.epoch(), "\n");
  for (const moe::v1::PoolInfo& pool : p.pools()) {
    absl::StrAppend(
        &out,
        absl::StrFormat(
            "%-10s %-9s %-6s slots %-3s", pool.name(), pool.healthy() ? "healthy" : "UNHEALTHY",
            pool.device().empty() ? "?" : pool.device(),
            pool.expert_slots() > 0 ? absl::StrCat(pool.expert_slots()) : std::string("any")));
    if (pool.draining()) absl::StrAppend(&out, " draining");
    std::vector<std::string> layers;
    for (int l = 0; l < pool.hosts_size(); ++l) {
      std::string s = absl::StrCat("L", pool.hosts(l).layer(), " ", Hosted(pool.hosts(l)));
      if (l < pool.loading_size() &&
          pool.loading(l).experts_size() + pool.loading(l).shared_size() > 0) {
        absl::StrAppend(&s, " (loading ", Hosted(pool.loading(l)), ")");
      }
      layers.push_back(s);
    }
    absl::StrAppend(&out, "  ", absl::StrJoin(layers, " | "), "\n");
  }
  for (const moe::v1::LayerBalance& l : p.layers()) {
    std::vector<std::string> tokens;
    for (double t : l.expert_tokens()) tokens.push_back(absl::StrFormat("%.0f", t));
    absl::StrAppend(&out, absl::StrFormat("layer %d  balancedness %.3f  expert tokens %s\n",
                                          l.layer(), l.balancedness(), absl::StrJoin(tokens, " ")));
  }
  return out;
}

std::string FormatRebalance(const moe::v1::RebalanceResponse& r) {
  std::string out = absl::StrCat("before:\n", FormatPlacement(r.before()), "after:\n",
                                 FormatPlacement(r.after()));
  absl::StrAppend(&out, r.changed() ? "changed" : "unchanged", "; planned balancedness:\n");
  std::vector<std::string> reasons = absl::StrSplit(r.reason(), "; ");
  for (int l = 0; l < r.predicted_before_size() && l < r.predicted_after_size(); ++l) {
    absl::StrAppend(&out, absl::StrFormat("  layer %d  %.3f -> %.3f  %s\n", l,
                                          r.predicted_before(l), r.predicted_after(l),
                                          l < static_cast<int>(reasons.size()) ? reasons[l] : ""));
  }
  return out;
}

}  // namespace moe::cli
