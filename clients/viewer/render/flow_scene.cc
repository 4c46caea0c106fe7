// Layout and drawing of the routing-flow scene; see flow_scene.h.
#include "clients/viewer/render/flow_scene.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "clients/viewer/render/load_stats.h"
#include "clients/viewer/render/palette.h"
#include "models/splitmix.h"

namespace moe::viewer::internal {
namespace {

// A uniform [0, 1) value fixed by (seed, a, b): each packet's phase depends only on its own token
// and slot, so frames render in any order and identical inputs give identical GIFs.
double UnitHash(uint64_t seed, uint64_t a, uint64_t b) {
  const uint64_t h = SplitMix64(seed ^ SplitMix64(a * 0x100000001b3ULL + b));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

std::string MicroName(int expert, int micro, int granularity) {
  return granularity > 1 ? absl::StrCat("E", expert, ".", micro) : absl::StrCat("E", expert);
}

// The applied weight clamped to [0, 1]; a non-finite one draws as 0 rather than breaking the
// frame's geometry.
double Weight(const FlowChoice& c) {
  return std::isfinite(c.weight) ? std::clamp(static_cast<double>(c.weight), 0.0, 1.0) : 0.0;
}

void DrawPacket(cairo_t* cr, Point p0, Point control, Point target, double t, Rgb8 color,
                double r) {
  // A short fading tail makes the direction of travel readable in a still frame.
  for (int j = 3; j >= 1; --j) {
    const double tt = t - 0.04 * j;
    if (tt < 0) continue;
    Circle(cr, QuadBezier(p0, control, target, tt), r * (1 - 0.18 * j));
    SetColor(cr, color, 0.55 - 0.13 * j);
    cairo_fill(cr);
  }
  const Point p = QuadBezier(p0, control, target, t);
  Circle(cr, p, r * 1.7);
  SetColor(cr, color, 0.45);
  cairo_fill(cr);
  Circle(cr, p, r);
  SetColor(cr, kWhite);
  cairo_fill(cr);
}

}  // namespace

absl::Status ValidateScene(const FlowLayout& layout, absl::Span<const FlowToken> tokens) {
  if (layout.n_experts < 1 || layout.n_experts > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("layout: n_experts must be in [1, 1024], got ", layout.n_experts));
  }
  if (layout.granularity < 1 || layout.granularity > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("layout: granularity must be in [1, 64], got ", layout.granularity));
  }
  if (layout.n_shared < 0 || layout.n_shared > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("layout: n_shared must be in [0, 64], got ", layout.n_shared));
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError("tokens: no routed tokens to draw");
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    for (const FlowChoice& c : tokens[i].experts) {
      if (c.expert < 0 || c.expert >= layout.n_experts) {
        return absl::InvalidArgumentError(absl::StrCat("token ", i, " layer ", tokens[i].layer,
                                                       ": expert ", c.expert, " not in [0, ",
                                                       layout.n_experts, ")"));
      }
      if (c.micro < 0 || c.micro >= layout.granularity) {
        return absl::InvalidArgumentError(absl::StrCat("token ", i, " layer ", tokens[i].layer,
                                                       ": micro ", c.micro, " not in [0, ",
                                                       layout.granularity, ")"));
      }
    }
    for (int s : tokens[i].shared) {
      if (s < 0 || s >= layout.n_shared) {
        return absl::InvalidArgumentError(absl::StrCat("token ", i, " layer ", tokens[i].layer,
                                                       ": shared expert ", s, " not in [0, ",
                                                       layout.n_shared, ")"));
      }
    }
  }
  return absl::OkStatus();
}

FlowScene::FlowScene(const FlowLayout& layout, absl::Span<const FlowToken> tokens,
                     const GifOptions& options)
    : layout_(layout), tokens_(tokens), options_(options) {
  const double w = options.width;
  const double h = options.height;
  s_ = std::min(w / 900.0, h / 500.0);
  // Frames are timed by the delay the GIF really carries (whole centiseconds), so packet
  // speed on screen matches dot_period.
  delay_cs_ = std::max(1, static_cast<int>(std::lround(100.0 / options.fps)));
  frame_ms_ = delay_cs_ * 10;
  frames_per_token_ =
      options.frames_per_token > 0
          ? options.frames_per_token
          : std::max(3, static_cast<int>(std::ceil(2.0 * options.dot_period / frame_ms_)));

  caption_h_ = 0.12 * h;
  footer_h_ = 0.07 * h;
  const double area_top = caption_h_ + 0.03 * h;
  const double area_bottom = h - footer_h_ - 0.02 * h;
  const double area_h = area_bottom - area_top;

  router_r_ = std::min(0.085 * h, 0.06 * w);
  router_ = {0.24 * w, area_top + 0.38 * area_h};
  const double chip_h = std::max(14.0, 30 * s_);
  chip_ = {0.02 * w, router_.y - chip_h / 2, router_.x - router_r_ - 0.055 * w, chip_h};
  chart_ = {0.04 * w, router_.y + router_r_ + 0.07 * h, 0.27 * w, 0};
  chart_.h = area_bottom - chart_.y;

  // Experts in a column on the right; more columns when rows would get too thin to read.
  const int rows = layout.n_shared + layout.n_experts;
  const double col_x0 = 0.60 * w;
  const double col_w_total = 0.37 * w;
  const double min_cell = 16 * s_;
  int n_cols = 1;
  while (n_cols < 8 && std::ceil(static_cast<double>(rows) / n_cols) * min_cell > area_h) {
    ++n_cols;
  }
  const int rows_per_col = (rows + n_cols - 1) / n_cols;
  const double cell_h = std::min(area_h / rows_per_col, 52 * s_);
  const double col_gap = 0.02 * w;
  box_w_ = std::min((col_w_total - (n_cols - 1) * col_gap) / n_cols, 0.30 * w);
  box_h_ = cell_h * 0.78;
  const double y0 = area_top + (area_h - rows_per_col * cell_h) / 2;
  for (int i = 0; i < rows; ++i) {
    const int col = i / rows_per_col;
    const int row = i % rows_per_col;
    const Rect box{col_x0 + col * (box_w_ + col_gap), y0 + row * cell_h + (cell_h - box_h_) / 2,
                   box_w_, box_h_};
    (i < layout.n_shared ? shared_boxes_ : expert_boxes_).push_back(box);
  }
  label_w_ = std::min(0.3 * box_w_, 46 * s_);
  const double dots_w = box_w_ - label_w_ - 8 * s_;
  dot_r_ = std::max(1.5, std::min({box_h_ * 0.22, dots_w / layout.granularity * 0.3, 7 * s_}));
}

void FlowScene::Draw(cairo_t* cr, int frame) const {
  const int token_index = (frame / frames_per_token_) % static_cast<int>(tokens_.size());
  const double elapsed_ms = (frame % frames_per_token_) * static_cast<double>(frame_ms_);
  const FlowToken& token = tokens_[token_index];

  SetColor(cr, kBackground);
  cairo_paint(cr);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);

  // Load of this token's layer over the tokens shown so far in this cycle.
  std::vector<int64_t> load(layout_.n_experts, 0);
  for (int i = 0; i <= token_index; ++i) {
    if (tokens_[i].layer != token.layer) continue;
    for (const FlowChoice& c : tokens_[i].experts) ++load[c.expert];
  }
  std::vector<double> expert_weight(layout_.n_experts, 0.0);
  for (const FlowChoice& c : token.experts) expert_weight[c.expert] += Weight(c);

  DrawCaption(cr, token, token_index);
  DrawFooter(cr, token, load);
  DrawBoxes(cr, expert_weight, load);
  DrawArcs(cr, token);
  DrawMicroDots(cr, token, elapsed_ms, token_index);
  DrawPackets(cr, token, elapsed_ms, token_index);
  DrawRouter(cr, token, elapsed_ms);
  DrawChart(cr, token, elapsed_ms);
}

Point FlowScene::MicroDot(int expert, int micro) const {
  const Rect& box = expert_boxes_[expert];
  const double x0 = box.x + 6 * s_;
  const double span = box.w - label_w_ - 8 * s_;
  return {x0 + (micro + 0.5) * span / layout_.granularity, box.Center().y};
}

Point FlowScene::SharedDot(int shared) const {
  const Rect& box = shared_boxes_[shared];
  return {box.x + 6 * s_ + dot_r_, box.Center().y};
}

// Arcs leave the router on the side facing their target and arrive level with it, so a fan of
// arcs stays readable near the boxes where they separate.
void FlowScene::Arc(Point target, Point* p0, Point* control) const {
  const double angle = 0.6 * std::atan2(target.y - router_.y, target.x - router_.x);
  *p0 = {router_.x + router_r_ * std::cos(angle), router_.y + router_r_ * std::sin(angle)};
  *control = {(p0->x + target.x) / 2, target.y};
}

void FlowScene::DrawCaption(cairo_t* cr, const FlowToken& token, int token_index) const {
  const double w = options_.width;
  SetColor(cr, kPanel);
  cairo_rectangle(cr, 0, 0, w, caption_h_);
  cairo_fill(cr);
  SetColor(cr, kPanelBorder);
  cairo_rectangle(cr, 0, caption_h_ - std::max(1.0, s_), w, std::max(1.0, s_));
  cairo_fill(cr);

  const double x = 0.03 * w;
  SetFont(cr, 12 * s_, false);
  SetColor(cr, kTextDim);
  DrawText(cr, token.is_prompt ? "prompt token" : "generated token", x, caption_h_ * 0.36,
           Align::kLeft);
  SetFont(cr, 16 * s_, true);
  const std::string layer = absl::StrCat("layer ", token.layer);
  const double layer_w = TextWidth(cr, layer);
  SetColor(cr, kText);
  DrawText(cr, layer, 0.97 * w, caption_h_ * 0.48, Align::kRight);
  SetFont(cr, 12 * s_, false);
  SetColor(cr, kTextDim);
  DrawText(cr, absl::StrCat("token ", token_index + 1, " / ", tokens_.size()), 0.97 * w,
           caption_h_ * 0.8, Align::kRight);

  SetFont(cr, 22 * s_, true);
  SetColor(cr, kWhite);
  const double room = 0.94 * w - std::max(layer_w, 90 * s_) - x;
  DrawText(cr, absl::StrCat("\u201c", FitText(cr, token.text, room - 30 * s_), "\u201d"), x,
           caption_h_ * 0.8, Align::kLeft);
}

void FlowScene::DrawFooter(cairo_t* cr, const FlowToken& token,
                           const std::vector<int64_t>& load) const {
  const double w = options_.width;
  const double y = options_.height - footer_h_ * 0.4;
  SetFont(cr, 11 * s_, false);
  SetColor(cr, kTextDim);
  std::string shape = absl::StrCat(layout_.n_experts, " experts");
  if (layout_.granularity > 1) absl::StrAppend(&shape, " \u00d7 ", layout_.granularity, " micro");
  if (layout_.top_k > 0) absl::StrAppend(&shape, " \u00b7 top-", layout_.top_k);
  if (layout_.n_shared > 0) absl::StrAppend(&shape, " \u00b7 ", layout_.n_shared, " shared");
  DrawText(cr, shape, 0.03 * w, y, Align::kLeft);
  const LoadBalance balance = ComputeLoadBalance(load);
  DrawText(cr,
           absl::StrFormat("layer %d load so far: cv %.2f \u00b7 max/mean %.2f", token.layer,
                           balance.cv, balance.max_over_mean),
           0.97 * w, y, Align::kRight);
}

void FlowScene::DrawBoxes(cairo_t* cr, const std::vector<double>& expert_weight,
                          const std::vector<int64_t>& load) const {
  const double radius = 6 * s_;
  const double line = std::max(1.0, 1.5 * s_);
  SetFont(cr, std::min(box_h_ * 0.42, 13 * s_), true);

  for (size_t i = 0; i < shared_boxes_.size(); ++i) {
    const Rect& box = shared_boxes_[i];
    // Always on: a steady soft glow, the same every frame.
    SetColor(cr, kShared, 0.12);
    RoundedRect(cr, box.Inflate(3 * s_), radius + 3 * s_);
    cairo_fill(cr);
    SetColor(cr, Mix(kBackground, kShared, 0.3));
    RoundedRect(cr, box, radius);
    cairo_fill_preserve(cr);
    SetColor(cr, kShared);
    cairo_set_line_width(cr, line);
    cairo_stroke(cr);
    SetColor(cr, kShared);
    DrawText(cr, absl::StrCat("S", i, " shared"), box.x + 2 * dot_r_ + 12 * s_,
             CenteredBaseline(cr, box.Center().y), Align::kLeft);
  }

  const int64_t max_load = *std::max_element(load.begin(), load.end());
  for (int e = 0; e < layout_.n_experts; ++e) {
    const Rect& box = expert_boxes_[e];
    const Rgb8 color = ExpertColor(e);
    const double weight = std::min(expert_weight[e], 1.0);
    if (weight > 0) {
      // Glow in rings that fade outward; brighter for a larger share of the token.
      for (int ring = 3; ring >= 1; --ring) {
        SetColor(cr, color, (0.10 + 0.12 * weight) * (4 - ring) / 3.0);
        RoundedRect(cr, box.Inflate(ring * 3 * s_), radius + ring * 3 * s_);
        cairo_fill(cr);
      }
      SetColor(cr, Mix(kBackground, color, 0.3));
    } else {
      SetColor(cr, kPanel);
    }
    RoundedRect(cr, box, radius);
    cairo_fill_preserve(cr);
    SetColor(cr, weight > 0 ? color : kPanelBorder);
    cairo_set_line_width(cr, weight > 0 ? 2 * line : line);
    cairo_stroke(cr);

    if (max_load > 0 && load[e] > 0) {
      const double strip_h = std::max(2.0, box.h * 0.08);
      const double strip_w = (box.w - 2 * radius) * load[e] / static_cast<double>(max_load);
      SetColor(cr, color, 0.7);
      cairo_rectangle(cr, box.x + radius, box.y + box.h - strip_h - std::max(1.0, 2 * s_), strip_w,
                      strip_h);
      cairo_fill(cr);
    }
    SetColor(cr, weight > 0 ? kWhite : kTextDim);
    DrawText(cr, absl::StrCat("E", e), box.x + box.w - 6 * s_, CenteredBaseline(cr, box.Center().y),
             Align::kRight);
  }
}

void FlowScene::DrawArcs(cairo_t* cr, const FlowToken& token) const {
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  Point p0, control;
  const double dash[] = {4 * s_, 4 * s_};
  for (int shared : token.shared) {
    const Point target = SharedDot(shared);
    Arc(target, &p0, &control);
    SetColor(cr, kShared, 0.55);
    cairo_set_line_width(cr, std::max(1.0, 2 * s_));
    cairo_set_dash(cr, dash, 2, 0);
    QuadCurve(cr, p0, control, target);
    cairo_stroke(cr);
  }
  cairo_set_dash(cr, nullptr, 0, 0);
  // Heaviest first, so thin arcs stay visible on top of thick ones.
  std::vector<const FlowChoice*> order;
  for (const FlowChoice& c : token.experts) order.push_back(&c);
  std::stable_sort(order.begin(), order.end(), [](const FlowChoice* a, const FlowChoice* b) {
    return Weight(*a) > Weight(*b);
  });
  for (const FlowChoice* c : order) {
    const Point target = MicroDot(c->expert, c->micro);
    Arc(target, &p0, &control);
    const double width = std::max(2.0, 2.0 + 18.0 * Weight(*c)) * s_;
    // A dark casing keeps an arc distinct where it crosses a thicker one of the same colour.
    QuadCurve(cr, p0, control, target);
    SetColor(cr, kBackground, 0.7);
    cairo_set_line_width(cr, width + 3 * s_);
    cairo_stroke_preserve(cr);
    SetColor(cr, ExpertColor(c->expert));
    cairo_set_line_width(cr, width);
    cairo_stroke(cr);
  }
}

double FlowScene::PacketT(double elapsed_ms, int token_index, int slot) const {
  // Packets leave the router at staggered times after the token arrives, then keep cycling.
  const double u = elapsed_ms / options_.dot_period -
                   0.6 * UnitHash(options_.seed, static_cast<uint64_t>(token_index),
                                  static_cast<uint64_t>(slot));
  return u < 0 ? -1.0 : u - std::floor(u);
}

void FlowScene::DrawMicroDots(cairo_t* cr, const FlowToken& token, double elapsed_ms,
                              int token_index) const {
  const double line = std::max(1.0, 1.2 * s_);
  for (int e = 0; e < layout_.n_experts; ++e) {
    for (int m = 0; m < layout_.granularity; ++m) {
      Circle(cr, MicroDot(e, m), dot_r_);
      SetColor(cr, kBackground);
      cairo_fill_preserve(cr);
      SetColor(cr, kMuted);
      cairo_set_line_width(cr, line);
      cairo_stroke(cr);
    }
  }
  for (size_t i = 0; i < shared_boxes_.size(); ++i) {
    Circle(cr, SharedDot(static_cast<int>(i)), dot_r_);
    SetColor(cr, kShared);
    cairo_fill(cr);
  }
  for (size_t slot = 0; slot < token.experts.size(); ++slot) {
    const FlowChoice& c = token.experts[slot];
    const Point p = MicroDot(c.expert, c.micro);
    // A ring swells as each packet lands.
    const double t = PacketT(elapsed_ms, token_index, static_cast<int>(slot));
    const double pulse = t > 0.8 ? (t - 0.8) / 0.2 : 0.0;
    if (pulse > 0) {
      Circle(cr, p, dot_r_ * (1.4 + 1.2 * pulse));
      SetColor(cr, ExpertColor(c.expert), 0.5 * (1 - pulse) + 0.2);
      cairo_fill(cr);
    }
    Circle(cr, p, dot_r_ * 1.15);
    SetColor(cr, ExpertColor(c.expert));
    cairo_fill_preserve(cr);
    SetColor(cr, kWhite);
    cairo_set_line_width(cr, line);
    cairo_stroke(cr);
  }
}

void FlowScene::DrawPackets(cairo_t* cr, const FlowToken& token, double elapsed_ms,
                            int token_index) const {
  Point p0, control;
  const int n = static_cast<int>(token.experts.size());
  for (size_t i = 0; i < token.shared.size(); ++i) {
    const double t = PacketT(elapsed_ms, token_index, n + static_cast<int>(i));
    if (t < 0) continue;
    const Point target = SharedDot(token.shared[i]);
    Arc(target, &p0, &control);
    DrawPacket(cr, p0, control, target, t, kShared, 2.5 * s_);
  }
  for (int slot = 0; slot < n; ++slot) {
    const FlowChoice& c = token.experts[slot];
    const double t = PacketT(elapsed_ms, token_index, slot);
    if (t < 0) continue;
    const Point target = MicroDot(c.expert, c.micro);
    Arc(target, &p0, &control);
    DrawPacket(cr, p0, control, target, t, ExpertColor(c.expert), (3.0 + 4.0 * Weight(c)) * s_);
  }
}

void FlowScene::DrawRouter(cairo_t* cr, const FlowToken& token, double elapsed_ms) const {
  // The token enters from the left.
  const double line = std::max(1.0, 1.5 * s_);
  SetColor(cr, kPanel);
  RoundedRect(cr, chip_, chip_.h / 2);
  cairo_fill_preserve(cr);
  SetColor(cr, kTextDim);
  cairo_set_line_width(cr, line);
  cairo_stroke(cr);
  SetFont(cr, 13 * s_, true);
  SetColor(cr, kText);
  DrawText(cr, FitText(cr, token.text, chip_.w - chip_.h * 0.8), chip_.Center().x,
           CenteredBaseline(cr, chip_.Center().y), Align::kCenter);
  const double arrow_x0 = chip_.x + chip_.w + 4 * s_;
  const double arrow_x1 = router_.x - router_r_ - 4 * s_;
  if (arrow_x1 > arrow_x0) {
    SetColor(cr, kTextDim);
    cairo_move_to(cr, arrow_x0, router_.y);
    cairo_line_to(cr, arrow_x1 - 5 * s_, router_.y);
    cairo_stroke(cr);
    cairo_move_to(cr, arrow_x1, router_.y);
    cairo_line_to(cr, arrow_x1 - 7 * s_, router_.y - 4 * s_);
    cairo_line_to(cr, arrow_x1 - 7 * s_, router_.y + 4 * s_);
    cairo_close_path(cr);
    cairo_fill(cr);
  }

  // The ring pulses once per packet period: the router is busy while packets fly.
  const double phase = std::fmod(elapsed_ms / options_.dot_period, 1.0);
  Circle(cr, router_, router_r_ + 4 * s_ * (1 - phase));
  SetColor(cr, kText, 0.25 * (1 - phase));
  cairo_fill(cr);
  Circle(cr, router_, router_r_);
  SetColor(cr, kPanel);
  cairo_fill_preserve(cr);
  SetColor(cr, kText);
  cairo_set_line_width(cr, 2.5 * s_);
  cairo_stroke(cr);
  SetFont(cr, 14 * s_, true);
  SetColor(cr, kWhite);
  DrawText(cr, "router", router_.x, router_.y + 1 * s_, Align::kCenter);
  if (layout_.top_k > 0) {
    SetFont(cr, 11 * s_, false);
    SetColor(cr, kTextDim);
    DrawText(cr,
             absl::StrCat("top-", layout_.top_k, " of ", layout_.n_experts * layout_.granularity),
             router_.x, router_.y + 16 * s_, Align::kCenter);
  }
}

void FlowScene::DrawChart(cairo_t* cr, const FlowToken& token, double elapsed_ms) const {
  if (chart_.h < 30 * s_) return;
  SetFont(cr, 12 * s_, false);
  SetColor(cr, kTextDim);
  DrawText(cr, "top-k weights", chart_.x, chart_.y + 10 * s_, Align::kLeft);
  const double top = chart_.y + 26 * s_;
  const double bottom = chart_.y + chart_.h - 16 * s_;
  if (bottom - top < 8 * s_) return;
  SetColor(cr, kPanelBorder);
  cairo_rectangle(cr, chart_.x, top, chart_.w, std::max(1.0, s_));
  cairo_rectangle(cr, chart_.x, bottom, chart_.w, std::max(1.0, s_));
  cairo_fill(cr);

  const int k = static_cast<int>(token.experts.size());
  if (k == 0) return;
  // Bars grow in over half a packet period when the token arrives.
  const double grow = std::min(1.0, elapsed_ms / (0.5 * options_.dot_period) + 0.15);
  const double slot = chart_.w / k;
  const double bar_w = std::min(slot * 0.64, 40 * s_);
  SetFont(cr, std::min(11 * s_, slot * 0.3), false);
  for (int i = 0; i < k; ++i) {
    const FlowChoice& c = token.experts[i];
    const double bar_h = (bottom - top) * Weight(c) * grow;
    const double cx = chart_.x + (i + 0.5) * slot;
    SetColor(cr, ExpertColor(c.expert));
    cairo_rectangle(cr, cx - bar_w / 2, bottom - bar_h, bar_w, bar_h);
    cairo_fill(cr);
    SetColor(cr, kText);
    DrawText(cr, absl::StrFormat("%.2f", Weight(c)), cx, bottom - bar_h - 4 * s_, Align::kCenter);
    SetColor(cr, kTextDim);
    DrawText(cr, MicroName(c.expert, c.micro, layout_.granularity), cx, bottom + 13 * s_,
             Align::kCenter);
  }
}

}  // namespace moe::viewer::internal
