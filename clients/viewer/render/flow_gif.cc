// The public entry points of the routing-flow animation: validate, then draw the scene
// (flow_scene.h) frame by frame, quantize (quantize.h) and write the GIF (gif_writer.h).
#include "clients/viewer/render/flow_gif.h"

#include <cairo.h>

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "clients/viewer/render/draw.h"
#include "clients/viewer/render/flow_scene.h"
#include "clients/viewer/render/gif_writer.h"
#include "clients/viewer/render/quantize.h"

namespace moe::viewer {

using internal::CairoError;
using internal::CairoPtr;
using internal::FlowScene;
using internal::GifWriter;
using internal::Quantizer;
using internal::SurfacePtr;
using internal::ValidateScene;

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

  absl::StatusOr<std::unique_ptr<GifWriter>> gif = GifWriter::Open(options.out);
  if (!gif.ok()) {
    return absl::Status(gif.status().code(), absl::StrCat("--out: ", gif.status().message()));
  }
  // An early return below destroys the writer, which removes the partial file.
  if (absl::Status s = (*gif)->Start(w, h, quantizer.colors(), scene.delay_cs()); !s.ok()) {
    return s;
  }
  for (int frame = 0; frame < options.frames; ++frame) {
    scene.Draw(cr.get(), frame);
    if (cairo_status(cr.get()) != CAIRO_STATUS_SUCCESS) {
      return CairoError(cairo_status(cr.get()), absl::StrCat("drawing frame ", frame));
    }
    cairo_surface_flush(surface.get());
    const unsigned char* data = cairo_image_surface_get_data(surface.get());
    const int stride = cairo_image_surface_get_stride(surface.get());
    absl::Status added = (*gif)->AddFrame([&](int y, uint8_t* row) {
      quantizer.MapRow(reinterpret_cast<const uint32_t*>(data + y * stride), w, row);
    });
    if (!added.ok()) return added;
  }
  return (*gif)->Close();
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
