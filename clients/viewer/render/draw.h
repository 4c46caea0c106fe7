// Small cairo drawing helpers of the flow GIF: geometry, shapes, colours and text that fits a
// width. Internal to the renderer (flow_gif.h is the public interface). Functions only touch the
// context they are given; thread-safe for distinct contexts.
#ifndef MOE_CLIENTS_VIEWER_RENDER_DRAW_H_
#define MOE_CLIENTS_VIEWER_RENDER_DRAW_H_

#include <cairo.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "clients/viewer/render/palette.h"

namespace moe::viewer::internal {

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
using SurfacePtr = std::unique_ptr<cairo_surface_t, CairoSurfaceDeleter>;
using CairoPtr = std::unique_ptr<cairo_t, CairoDeleter>;

// InternalError "<what>: <cairo's description of status>".
absl::Status CairoError(cairo_status_t status, absl::string_view what);

void SetColor(cairo_t* cr, Rgb8 c, double alpha = 1.0);

// Adds a closed sub-path; the radius is clamped to half the shorter side.
void RoundedRect(cairo_t* cr, const Rect& r, double radius);

// Adds a closed sub-path.
void Circle(cairo_t* cr, Point c, double r);

// The point at t in [0, 1] on the quadratic Bezier from p0 through control c to p2.
Point QuadBezier(Point p0, Point c, Point p2, double t);

// Starts a new path along the quadratic Bezier of QuadBezier.
void QuadCurve(cairo_t* cr, Point p0, Point c, Point p2);

enum class Align { kLeft, kCenter, kRight };

void SetFont(cairo_t* cr, double size, bool bold);

// Horizontal advance of text in the current font.
double TextWidth(cairo_t* cr, const std::string& text);

// `raw` sanitized (SanitizeForDisplay), cut at code points until it fits in max_width with the
// current font; a cut text ends in "…".
std::string FitText(cairo_t* cr, absl::string_view raw, double max_width);

// Draws text in the current font and colour with its baseline at y, aligned on x.
void DrawText(cairo_t* cr, const std::string& text, double x, double y, Align align);

// Baseline that centres the current font's capitals vertically on y.
double CenteredBaseline(cairo_t* cr, double y);

}  // namespace moe::viewer::internal

#endif  // MOE_CLIENTS_VIEWER_RENDER_DRAW_H_
