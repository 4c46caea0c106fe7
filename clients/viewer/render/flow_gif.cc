// Routing-flow animation: a cairo scene per frame, quantized to one fixed palette and written
// with giflib; see flow_gif.h.
#include "clients/viewer/render/flow_gif.h"

#include <cairo.h>
#include <gif_lib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "clients/viewer/render/display_text.h"
#include "clients/viewer/render/load_stats.h"
#include "clients/viewer/render/palette.h"

namespace moe::viewer {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kLutBits = 6;  // per channel: 2^18 bins keeps near-identical theme colours apart
constexpr size_t kMaxTextBytes = 160;

struct Point {
  double x = 0.0;
  double y = 0.0;
};

struct Rect {
  double x = 0.0;
  double y = 0.0;
  double w = 0.0;
  double h = 0.0;

  Point Center() const { return {x + w / 2, y + h / 2}; }
  Rect Inflate(double d) const { return {x - d, y - d, w + 2 * d, h + 2 * d}; }
};

struct CairoSurfaceDeleter {
  void operator()(cairo_surface_t* s) const { cairo_surface_destroy(s); }
};
struct CairoDeleter {
  void operator()(cairo_t* cr) const { cairo_destroy(cr); }
};
struct ColorMapDeleter {
  void operator()(ColorMapObject* m) const { GifFreeMapObject(m); }
};
using SurfacePtr = std::unique_ptr<cairo_surface_t, CairoSurfaceDeleter>;
using CairoPtr = std::unique_ptr<cairo_t, CairoDeleter>;

void SetColor(cairo_t* cr, Rgb8 c, double alpha = 1.0) {
  cairo_set_source_rgba(cr, c.r / 255.0, c.g / 255.0, c.b / 255.0, alpha);
}

Rgb8 Mix(Rgb8 a, Rgb8 b, double t) {
  const auto lerp = [t](uint8_t u, uint8_t v) {
    return static_cast<uint8_t>(std::lround(u + (v - u) * t));
  };
  return {lerp(a.r, b.r), lerp(a.g, b.g), lerp(a.b, b.b)};
}

void RoundedRect(cairo_t* cr, const Rect& r, double radius) {
  radius = std::max(0.0, std::min({radius, r.w / 2, r.h / 2}));
  cairo_new_sub_path(cr);
  cairo_arc(cr, r.x + r.w - radius, r.y + radius, radius, -kPi / 2, 0);
  cairo_arc(cr, r.x + r.w - radius, r.y + r.h - radius, radius, 0, kPi / 2);
  cairo_arc(cr, r.x + radius, r.y + r.h - radius, radius, kPi / 2, kPi);
  cairo_arc(cr, r.x + radius, r.y + radius, radius, kPi, 1.5 * kPi);
  cairo_close_path(cr);
}

void Circle(cairo_t* cr, Point c, double r) {
  cairo_new_sub_path(cr);
  cairo_arc(cr, c.x, c.y, r, 0, 2 * kPi);
}

Point QuadBezier(Point p0, Point c, Point p2, double t) {
  const double a = (1 - t) * (1 - t);
  const double b = 2 * (1 - t) * t;
  const double d = t * t;
  return {a * p0.x + b * c.x + d * p2.x, a * p0.y + b * c.y + d * p2.y};
}

// Cairo draws cubics; a quadratic is the cubic with controls 2/3 of the way to its control point.
void QuadCurve(cairo_t* cr, Point p0, Point c, Point p2) {
  cairo_move_to(cr, p0.x, p0.y);
  cairo_curve_to(cr, p0.x + 2.0 / 3 * (c.x - p0.x), p0.y + 2.0 / 3 * (c.y - p0.y),
                 p2.x + 2.0 / 3 * (c.x - p2.x), p2.y + 2.0 / 3 * (c.y - p2.y), p2.x, p2.y);
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A uniform [0, 1) value fixed by (seed, a, b): each packet's phase depends only on its own token
// and slot, so frames render in any order and identical inputs give identical GIFs.
double UnitHash(uint64_t seed, uint64_t a, uint64_t b) {
  const uint64_t h = SplitMix64(seed ^ SplitMix64(a * 0x100000001b3ULL + b));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

enum class Align { kLeft, kCenter, kRight };

void SetFont(cairo_t* cr, double size, bool bold) {
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

double TextWidth(cairo_t* cr, const std::string& text) {
  cairo_text_extents_t extents;
  cairo_text_extents(cr, text.c_str(), &extents);
  return extents.x_advance;
}

// `text` (sanitized) cut at code points until it fits in max_width with the current font.
std::string FitText(cairo_t* cr, absl::string_view raw, double max_width) {
  std::string text = SanitizeForDisplay(raw);
  bool cut = false;
  // Bounds the measuring loop below for very long tokens; text is valid UTF-8, so stepping back
  // over continuation bytes lands on a code point start.
  if (text.size() > kMaxTextBytes) {
    size_t end = kMaxTextBytes;
    while (end > 0 && (static_cast<uint8_t>(text[end]) & 0xC0) == 0x80) --end;
    text.resize(end);
    cut = true;
  }
  const auto pop_code_point = [&text] {
    while (!text.empty() && (static_cast<uint8_t>(text.back()) & 0xC0) == 0x80) text.pop_back();
    if (!text.empty()) text.pop_back();
  };
  while (!text.empty() && TextWidth(cr, cut ? text + "\u2026" : text) > max_width) {
    pop_code_point();
    cut = true;
  }
  return cut ? text + "\u2026" : text;
}

// Draws text with its baseline at y.
void DrawText(cairo_t* cr, const std::string& text, double x, double y, Align align) {
  const double w = TextWidth(cr, text);
  if (align == Align::kCenter) x -= w / 2;
  if (align == Align::kRight) x -= w;
  cairo_move_to(cr, x, y);
  cairo_show_text(cr, text.c_str());
}

// Baseline that centres the current font's capitals vertically on y.
double CenteredBaseline(cairo_t* cr, double y) {
  cairo_font_extents_t extents;
  cairo_font_extents(cr, &extents);
  return y + (extents.ascent - extents.descent) / 2;
}

std::string MicroName(int expert, int micro, int granularity) {
  return granularity > 1 ? absl::StrCat("E", expert, ".", micro) : absl::StrCat("E", expert);
}

// The 256 colours every frame is mapped to. Theme colours and expert colours are exact entries
// (flat areas stay flat instead of drifting to a cube corner), expert colours blended into the
// background give glows two in-between steps, and a 6x6x6 cube catches the rest.
class Quantizer {
 public:
  Quantizer() {
    int n = 0;
    for (Rgb8 c : {kBackground, kPanel, kPanelBorder, kMuted, kTextDim, kText, kShared, kWhite,
                   Rgb8{0, 0, 0}, Mix(kBackground, kShared, 0.3)}) {
      colors_[n++] = c;
    }
    for (Rgb8 c : kExpertColors) {
      colors_[n++] = c;
      colors_[n++] = Mix(kBackground, c, 0.3);
      colors_[n++] = Mix(kBackground, c, 0.6);
    }
    for (int r = 0; r < 6 && n < 256; ++r) {
      for (int g = 0; g < 6 && n < 256; ++g) {
        for (int b = 0; b < 6 && n < 256; ++b) {
          colors_[n++] = {static_cast<uint8_t>(51 * r), static_cast<uint8_t>(51 * g),
                          static_cast<uint8_t>(51 * b)};
        }
      }
    }
    while (n < 256) colors_[n++] = kBackground;

    constexpr int kSide = 1 << kLutBits;
    constexpr int kShift = 8 - kLutBits;
    lut_.resize(kSide * kSide * kSide);
    for (int r = 0; r < kSide; ++r) {
      for (int g = 0; g < kSide; ++g) {
        for (int b = 0; b < kSide; ++b) {
          const int cr = (r << kShift) + (1 << kShift) / 2;
          const int cg = (g << kShift) + (1 << kShift) / 2;
          const int cb = (b << kShift) + (1 << kShift) / 2;
          int best = 0;
          int best_d = 1 << 30;
          for (int i = 0; i < 256; ++i) {
            const int dr = cr - colors_[i].r;
            const int dg = cg - colors_[i].g;
            const int db = cb - colors_[i].b;
            // The eye is most sensitive to green, least to blue.
            const int d = 2 * dr * dr + 4 * dg * dg + 3 * db * db;
            if (d < best_d) best_d = d, best = i;
          }
          lut_[(r << (2 * kLutBits)) | (g << kLutBits) | b] = static_cast<uint8_t>(best);
        }
      }
    }
  }

  const std::array<Rgb8, 256>& colors() const { return colors_; }

  // Maps one row of cairo ARGB32 pixels (opaque; the scene paints its background first).
  void MapRow(const uint32_t* argb, int width, uint8_t* out) const {
    constexpr int kShift = 8 - kLutBits;
    constexpr uint32_t kMask = (1u << kLutBits) - 1;
    for (int x = 0; x < width; ++x) {
      const uint32_t p = argb[x];
      const uint32_t r = (p >> (16 + kShift)) & kMask;
      const uint32_t g = (p >> (8 + kShift)) & kMask;
      const uint32_t b = (p >> kShift) & kMask;
      out[x] = lut_[(r << (2 * kLutBits)) | (g << kLutBits) | b];
    }
  }

 private:
  std::array<Rgb8, 256> colors_;
  std::vector<uint8_t> lut_;
};

// Geometry of the scene, fixed for the whole animation, and the drawing of one frame.
class FlowScene {
 public:
  FlowScene(const FlowLayout& layout, absl::Span<const FlowToken> tokens, const GifOptions& options)
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

  int delay_cs() const { return delay_cs_; }

  void Draw(cairo_t* cr, int frame) const {
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

 private:
  static double Weight(const FlowChoice& c) {
    return std::isfinite(c.weight) ? std::clamp(static_cast<double>(c.weight), 0.0, 1.0) : 0.0;
  }

  Point MicroDot(int expert, int micro) const {
    const Rect& box = expert_boxes_[expert];
    const double x0 = box.x + 6 * s_;
    const double span = box.w - label_w_ - 8 * s_;
    return {x0 + (micro + 0.5) * span / layout_.granularity, box.Center().y};
  }

  Point SharedDot(int shared) const {
    const Rect& box = shared_boxes_[shared];
    return {box.x + 6 * s_ + dot_r_, box.Center().y};
  }

  // Arcs leave the router on the side facing their target and arrive level with it, so a fan of
  // arcs stays readable near the boxes where they separate.
  void Arc(Point target, Point* p0, Point* control) const {
    const double angle = 0.6 * std::atan2(target.y - router_.y, target.x - router_.x);
    *p0 = {router_.x + router_r_ * std::cos(angle), router_.y + router_r_ * std::sin(angle)};
    *control = {(p0->x + target.x) / 2, target.y};
  }

  void DrawCaption(cairo_t* cr, const FlowToken& token, int token_index) const {
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

  void DrawFooter(cairo_t* cr, const FlowToken& token, const std::vector<int64_t>& load) const {
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

  void DrawBoxes(cairo_t* cr, const std::vector<double>& expert_weight,
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
        cairo_rectangle(cr, box.x + radius, box.y + box.h - strip_h - std::max(1.0, 2 * s_),
                        strip_w, strip_h);
        cairo_fill(cr);
      }
      SetColor(cr, weight > 0 ? kWhite : kTextDim);
      DrawText(cr, absl::StrCat("E", e), box.x + box.w - 6 * s_,
               CenteredBaseline(cr, box.Center().y), Align::kRight);
    }
  }

  void DrawArcs(cairo_t* cr, const FlowToken& token) const {
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

  double PacketT(double elapsed_ms, int token_index, int slot) const {
    // Packets leave the router at staggered times after the token arrives, then keep cycling.
    const double u = elapsed_ms / options_.dot_period -
                     0.6 * UnitHash(options_.seed, static_cast<uint64_t>(token_index),
                                    static_cast<uint64_t>(slot));
    return u < 0 ? -1.0 : u - std::floor(u);
  }

  void DrawMicroDots(cairo_t* cr, const FlowToken& token, double elapsed_ms,
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

  void DrawPacket(cairo_t* cr, Point p0, Point control, Point target, double t, Rgb8 color,
                  double r) const {
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

  void DrawPackets(cairo_t* cr, const FlowToken& token, double elapsed_ms, int token_index) const {
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

  void DrawRouter(cairo_t* cr, const FlowToken& token, double elapsed_ms) const {
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

  void DrawChart(cairo_t* cr, const FlowToken& token, double elapsed_ms) const {
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

std::string GifError(int code) {
  const char* message = GifErrorString(code);
  return message != nullptr ? message : absl::StrCat("giflib error ", code);
}

absl::Status CairoError(cairo_status_t status, absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", cairo_status_to_string(status)));
}

}  // namespace

absl::Status ValidateGifOptions(const GifOptions& options) {
  if (options.out.empty()) return absl::InvalidArgumentError("--out: must not be empty");
  if (options.frames < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--frames: must be >= 1, got ", options.frames));
  }
  if (options.fps < 1 || options.fps > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("--fps: must be in [1, 100], got ", options.fps));
  }
  if (options.dot_period <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--dot_period: must be > 0, got ", options.dot_period));
  }
  if (options.frames_per_token < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--frames_per_token: must be >= 0, got ", options.frames_per_token));
  }
  if (options.width < 64 || options.width > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("--width: must be in [64, 4096], got ", options.width));
  }
  if (options.height < 64 || options.height > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("--height: must be in [64, 4096], got ", options.height));
  }
  return absl::OkStatus();
}

absl::Status RenderFlowGif(const FlowLayout& layout, absl::Span<const FlowToken> tokens,
                           const GifOptions& options) {
  if (absl::Status s = ValidateGifOptions(options); !s.ok()) return s;
  if (absl::Status s = ValidateScene(layout, tokens); !s.ok()) return s;

  const int w = options.width;
  const int h = options.height;
  const FlowScene scene(layout, tokens, options);
  const Quantizer quantizer;
  SurfacePtr surface(cairo_image_surface_create(CAIRO_FORMAT_ARGB32, w, h));
  CairoPtr cr(cairo_create(surface.get()));
  if (cairo_status(cr.get()) != CAIRO_STATUS_SUCCESS) {
    return CairoError(cairo_status(cr.get()), absl::StrCat("frame surface ", w, "x", h));
  }

  int error = 0;
  GifFileType* gif = EGifOpenFileName(options.out.c_str(), /*TestExistence=*/false, &error);
  if (gif == nullptr) {
    return absl::InternalError(
        absl::StrCat("--out: cannot open ", options.out, " for writing: ", GifError(error)));
  }
  // A partial GIF is worse than none: every failure after this point closes and removes it.
  const auto discard = [&] {
    int ignored = 0;
    EGifCloseFile(gif, &ignored);
    std::remove(options.out.c_str());
  };
  const auto fail = [&](absl::string_view what, int code) {
    discard();
    return absl::InternalError(
        absl::StrCat("writing ", options.out, ": ", what, ": ", GifError(code)));
  };

  std::array<GifColorType, 256> colors;
  for (int i = 0; i < 256; ++i) {
    colors[i] = {quantizer.colors()[i].r, quantizer.colors()[i].g, quantizer.colors()[i].b};
  }
  std::unique_ptr<ColorMapObject, ColorMapDeleter> color_map(GifMakeMapObject(256, colors.data()));
  if (color_map == nullptr) return fail("colour map", E_GIF_ERR_NOT_ENOUGH_MEM);
  // Graphics control blocks and the loop extension need GIF89a.
  EGifSetGifVersion(gif, true);
  if (EGifPutScreenDesc(gif, w, h, 8, 0, color_map.get()) == GIF_ERROR) {
    return fail("screen descriptor", gif->Error);
  }
  // NETSCAPE2.0 application extension, sub-block 1 with loop count 0: loop forever.
  static const GifByteType kLoop[3] = {1, 0, 0};
  if (EGifPutExtensionLeader(gif, APPLICATION_EXT_FUNC_CODE) == GIF_ERROR ||
      EGifPutExtensionBlock(gif, 11, "NETSCAPE2.0") == GIF_ERROR ||
      EGifPutExtensionBlock(gif, 3, kLoop) == GIF_ERROR ||
      EGifPutExtensionTrailer(gif) == GIF_ERROR) {
    return fail("loop extension", gif->Error);
  }

  GraphicsControlBlock gcb;
  gcb.DisposalMode = DISPOSE_DO_NOT;
  gcb.UserInputFlag = false;
  gcb.DelayTime = scene.delay_cs();
  gcb.TransparentColor = NO_TRANSPARENT_COLOR;
  GifByteType gcb_bytes[4];
  const size_t gcb_len = EGifGCBToExtension(&gcb, gcb_bytes);

  std::vector<GifPixelType> row(w);
  for (int frame = 0; frame < options.frames; ++frame) {
    scene.Draw(cr.get(), frame);
    if (cairo_status(cr.get()) != CAIRO_STATUS_SUCCESS) {
      const cairo_status_t status = cairo_status(cr.get());
      discard();
      return CairoError(status, absl::StrCat("drawing frame ", frame));
    }
    cairo_surface_flush(surface.get());
    const unsigned char* data = cairo_image_surface_get_data(surface.get());
    const int stride = cairo_image_surface_get_stride(surface.get());
    if (EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, static_cast<int>(gcb_len), gcb_bytes) ==
            GIF_ERROR ||
        EGifPutImageDesc(gif, 0, 0, w, h, false, nullptr) == GIF_ERROR) {
      return fail(absl::StrCat("frame ", frame), gif->Error);
    }
    for (int y = 0; y < h; ++y) {
      quantizer.MapRow(reinterpret_cast<const uint32_t*>(data + y * stride), w, row.data());
      if (EGifPutLine(gif, row.data(), w) == GIF_ERROR) {
        return fail(absl::StrCat("frame ", frame), gif->Error);
      }
    }
  }
  if (EGifCloseFile(gif, &error) == GIF_ERROR) {
    std::remove(options.out.c_str());
    return absl::InternalError(
        absl::StrCat("writing ", options.out, ": closing: ", GifError(error)));
  }
  return absl::OkStatus();
}

absl::Status RenderFlowFramePng(const FlowLayout& layout, absl::Span<const FlowToken> tokens,
                                const GifOptions& options, int frame) {
  if (absl::Status s = ValidateGifOptions(options); !s.ok()) return s;
  if (absl::Status s = ValidateScene(layout, tokens); !s.ok()) return s;
  if (frame < 0)
    return absl::InvalidArgumentError(absl::StrCat("frame: must be >= 0, got ", frame));
  const FlowScene scene(layout, tokens, options);
  SurfacePtr surface(
      cairo_image_surface_create(CAIRO_FORMAT_ARGB32, options.width, options.height));
  CairoPtr cr(cairo_create(surface.get()));
  scene.Draw(cr.get(), frame);
  if (cairo_status(cr.get()) != CAIRO_STATUS_SUCCESS) {
    return CairoError(cairo_status(cr.get()), absl::StrCat("drawing frame ", frame));
  }
  const cairo_status_t status = cairo_surface_write_to_png(surface.get(), options.out.c_str());
  if (status != CAIRO_STATUS_SUCCESS) {
    return CairoError(status, absl::StrCat("--out: writing ", options.out));
  }
  return absl::OkStatus();
}

}  // namespace moe::viewer
