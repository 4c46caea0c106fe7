// The "viewer top" terminal dashboard as a pure function of a plain snapshot, so the layout is
// tested without a terminal: per-layer expert load bars with their balance figures, throughput,
// dropped events, and the latest tokens with the experts they went to. Thread-safe.
#ifndef MOE_CLIENTS_VIEWER_RENDER_TERMINAL_VIEW_H_
#define MOE_CLIENTS_VIEWER_RENDER_TERMINAL_VIEW_H_

#include <cstdint>
#include <string>
#include <vector>

namespace moe::viewer {

// One layer's load over the last interval.
struct LayerLoadCounts {
  int layer = 0;
  std::vector<int64_t> tokens;  // per flat micro-expert id, [n_experts * granularity]
};

// The experts one token went to in one layer.
struct TokenLayerExperts {
  int layer = 0;
  std::vector<int> experts;  // flat micro ids, highest weight first
};

struct RecentToken {
  std::string text;  // raw token text; sanitized when drawn
  bool is_prompt = false;
  std::vector<TokenLayerExperts> layers;
};

struct DashboardState {
  std::string model;    // shown in the header, e.g. the checkpoint name
  std::string target;   // the orchestrator address being watched
  int granularity = 1;  // micro-experts per base expert (m); bars aggregate to base experts
  std::vector<LayerLoadCounts> layers;
  double tokens_per_second = 0.0;
  std::vector<RecentToken> recent;  // oldest first; the newest that fit are shown, newest on top
  uint64_t dropped = 0;             // events lost to the subscriber queue so far
  // The router's placement, once known: its epoch and each layer's pool balancedness (1 = even).
  uint64_t placement_epoch = 0;  // 0 = not known
  std::vector<double> balancedness;
  bool color = false;  // ANSI 256-colour escapes; off for pipes and tests
};

// Renders the dashboard as at most `height` lines, each at most `width` display columns (escapes
// take none; with colour on every line ends in a reset). Bars of all layers share one scale, so
// their lengths compare across layers; when the experts do not fit as bars they become one
// sparkline column each. Layers that do not fit are cut with a note saying how many; recent tokens
// fill the lines left over. Returns no lines when width or height is below 1.
std::vector<std::string> RenderDashboard(const DashboardState& state, int width, int height);

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_RENDER_TERMINAL_VIEW_H_
