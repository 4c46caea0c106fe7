// Renders the routing "flow" of a sequence of routed tokens to an animated GIF: the router on the
// left, expert boxes with their micro-experts on the right, one arc per chosen micro-expert
// (colour = expert, thickness = weight) with packets moving along it, and a bar chart of the
// current token's weights. Plain structs in, so the viewer fills them from events and tests build
// them by hand. Functions are thread-safe; each call owns its surfaces and file.
#ifndef MOE_CLIENTS_VIEWER_RENDER_FLOW_GIF_H_
#define MOE_CLIENTS_VIEWER_RENDER_FLOW_GIF_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace moe::viewer {

struct FlowLayout {
  int n_experts = 0;    // routed base experts per layer
  int granularity = 1;  // micro-experts per base expert (m)
  int n_shared = 0;     // always-on shared experts
  int top_k = 0;        // micro-experts chosen per token; shown in the caption
};

// One chosen micro-expert of a token.
struct FlowChoice {
  int id = 0;          // flat micro id: expert * granularity + micro; drawing uses expert/micro
  int expert = 0;      // base expert
  int micro = 0;       // micro-expert inside the base expert
  float weight = 0.f;  // applied (renormalized) weight, in [0, 1]
};

// The routing of one token in one layer; a sequence of these is the animation.
struct FlowToken {
  std::string text;  // raw token text; sanitized when drawn
  bool is_prompt = false;
  int layer = 0;
  std::vector<FlowChoice> experts;  // highest weight first
  std::vector<int> shared;          // shared experts that ran
};

// Named like the `viewer gif` flags they come from, so errors name the flag to fix.
struct GifOptions {
  std::string out;           // --out: the GIF (or PNG, for RenderFlowFramePng) to write
  int frames = 120;          // --frames: >= 1
  int fps = 12;              // --fps: in [1, 100]; the GIF delay is 100/fps centiseconds
  int dot_period = 360;      // --dot_period: ms a packet takes to cross an arc; > 0
  int frames_per_token = 0;  // --frames_per_token: >= 0; 0 = enough for two packet crossings
  int width = 900;           // --width: in [64, 4096]
  int height = 500;          // --height: in [64, 4096]
  uint64_t seed = 42;        // --seed: jitters packet phases
};

// InvalidArgumentError naming the first bad flag, e.g. "--fps: must be in [1, 100], got 0".
absl::Status ValidateGifOptions(const GifOptions& options);

// Writes options.frames frames to options.out, looping forever, one 256-colour global palette.
// Each token is shown for frames_per_token frames; fewer tokens than needed cycle. Errors:
// InvalidArgument for bad options, no tokens, or a choice outside the layout; Internal for a
// cairo or giflib failure, naming the file. A failed write leaves no file behind.
absl::Status RenderFlowGif(const FlowLayout& layout, absl::Span<const FlowToken> tokens,
                           const GifOptions& options);

// Writes frame `frame` (0-based, as RenderFlowGif would draw it, before palette quantization) to
// options.out as a PNG: a still preview, and a way to look at one frame closely.
absl::Status RenderFlowFramePng(const FlowLayout& layout, absl::Span<const FlowToken> tokens,
                                const GifOptions& options, int frame);

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_RENDER_FLOW_GIF_H_
