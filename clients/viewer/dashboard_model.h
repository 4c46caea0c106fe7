// Folds RoutingEvents into the terminal dashboard's DashboardState (render/terminal_view.h): load
// snapshots become the per-layer bars, token events the recent-token list (one entry per token,
// with the experts of each of its layers). Not thread-safe; one per dashboard.
#ifndef MOE_CLIENTS_VIEWER_DASHBOARD_MODEL_H_
#define MOE_CLIENTS_VIEWER_DASHBOARD_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "clients/viewer/render/terminal_view.h"
#include "moe/v1/events.pb.h"

namespace moe::viewer {

class DashboardModel {
 public:
  // `n_micro`: n_experts * granularity when known, so idle experts show as empty bars; 0 = size
  // the bars by the ids seen. `max_recent`: recent tokens kept (more than any screen shows).
  DashboardModel(std::string model, std::string target, int granularity, int n_micro,
                 size_t max_recent = 256);

  void Add(const moe::v1::RoutingEvent& event);
  // The router's placement (at start, and from each placement event): epoch and balancedness.
  void SetPlacement(const moe::v1::Placement& placement);

  // The state to draw, with ANSI colour when `color`.
  DashboardState State(bool color) const;

  int64_t events() const { return events_; }

 private:
  void AddToken(const moe::v1::TokenRouted& token);

  DashboardState state_;
  int n_micro_;
  size_t max_recent_;
  int64_t events_ = 0;
  // Until the first load snapshot (a trace recorded without them, or before the first interval
  // ends) the bars count the token events seen, per layer.
  bool have_snapshot_ = false;
  bool idle_ = false;  // the latest snapshot counted nothing; the bars are the last busy one
  std::map<int, std::vector<int64_t>> token_counts_;
  // (request, position) of each entry of state_.recent, to put a token's layers together.
  std::vector<std::pair<std::string, int>> recent_keys_;
};

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_DASHBOARD_MODEL_H_
