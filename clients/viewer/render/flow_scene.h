// The scene of the routing-flow animation: the geometry of router, token chip, weight chart and
// expert boxes, fixed for the whole animation, and the drawing of any one frame with cairo.
// Internal to the renderer (flow_gif.h is the public interface). Immutable after construction;
// Draw may run concurrently on distinct contexts.
#ifndef MOE_CLIENTS_VIEWER_RENDER_FLOW_SCENE_H_
#define MOE_CLIENTS_VIEWER_RENDER_FLOW_SCENE_H_

#include <cairo.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "clients/viewer/render/draw.h"
#include "clients/viewer/render/flow_gif.h"

namespace moe::viewer::internal {

// InvalidArgumentError naming the first layout field or token choice the scene cannot draw, e.g.
// "token 1 layer 1: expert 9 not in [0, 8)", or an empty token list.
absl::Status ValidateScene(const FlowLayout& layout, absl::Span<const FlowToken> tokens);

class FlowScene {
 public:
  // REQUIRES: ValidateGifOptions(options) and ValidateScene(layout, tokens) are OK; `tokens`
  // outlives the scene.
  FlowScene(const FlowLayout& layout, absl::Span<const FlowToken> tokens,
            const GifOptions& options);

  // The delay between frames in whole centiseconds, as the GIF carries it; frames are timed by it
  // so packet speed on screen matches options.dot_period.
  int delay_cs() const { return delay_cs_; }

  // Paints frame `frame` (>= 0) over the whole of a width x height surface. Frames depend only on
  // their number, so they can be drawn in any order. Cairo errors stay in cr's status.
  void Draw(cairo_t* cr, int frame) const;

 private:
  Point MicroDot(int expert, int micro) const;
  Point SharedDot(int shared) const;
  void Arc(Point target, Point* p0, Point* control) const;
  // Phase in [0, 1) of the packet in `slot` of the token, or -1 before it leaves the router.
  double PacketT(double elapsed_ms, int token_index, int slot) const;

  void DrawCaption(cairo_t* cr, const FlowToken& token, int token_index) const;
  void DrawFooter(cairo_t* cr, const FlowToken& token, const std::vector<int64_t>& load) const;
  void DrawBoxes(cairo_t* cr, const std::vector<double>& expert_weight,
                 const std::vector<int64_t>& load) const;
  void DrawArcs(cairo_t* cr, const FlowToken& token) const;
  void DrawMicroDots(cairo_t* cr, const FlowToken& token, double elapsed_ms, int token_index) const;
  void DrawPackets(cairo_t* cr, const FlowToken& token, double elapsed_ms, int token_index) const;
  void DrawRouter(cairo_t* cr, const FlowToken& token, double elapsed_ms) const;
  void DrawChart(cairo_t* cr, const FlowToken& token, double elapsed_ms) const;

  const FlowLayout layout_;
  const absl::Span<const FlowToken> tokens_;
  const GifOptions options_;
  double s_ = 1.0;  // scale against the 900x500 design size
  int delay_cs_ = 8;
  int frame_ms_ = 80;
  int frames_per_token_ = 3;
  double caption_h_ = 0.0;
  double footer_h_ = 0.0;
  Point router_;
  double router_r_ = 0.0;
  Rect chip_;
  Rect chart_;
  std::vector<Rect> shared_boxes_;
  std::vector<Rect> expert_boxes_;
  double box_w_ = 0.0;
  double box_h_ = 0.0;
  double label_w_ = 0.0;
  double dot_r_ = 0.0;
};

}  // namespace moe::viewer::internal

#endif  // MOE_CLIENTS_VIEWER_RENDER_FLOW_SCENE_H_
