// Cairo helpers of the flow GIF; see draw.h.
#include "clients/viewer/render/draw.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "clients/viewer/render/display_text.h"

namespace moe::viewer::internal {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr size_t kMaxTextBytes = 160;

}  // namespace

absl::Status CairoError(cairo_status_t status, absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", cairo_status_to_string(status)));
}

void SetColor(cairo_t* cr, Rgb8 c, double alpha) {
  cairo_set_source_rgba(cr, c.r / 255.0, c.g / 255.0, c.b / 255.0, alpha);
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

void DrawText(cairo_t* cr, const std::string& text, double x, double y, Align align) {
  const double w = TextWidth(cr, text);
  if (align == Align::kCenter) x -= w / 2;
  if (align == Align::kRight) x -= w;
  cairo_move_to(cr, x, y);
  cairo_show_text(cr, text.c_str());
}

double CenteredBaseline(cairo_t* cr, double y) {
  cairo_font_extents_t extents;
  cairo_font_extents(cr, &extents);
  return y + (extents.ascent - extents.descent) / 2;
}

}  // namespace moe::viewer::internal
