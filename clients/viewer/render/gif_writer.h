// Writes an animated GIF frame by frame with giflib: one global 256-colour palette, the same delay
// on every frame, looping forever. A partial GIF is worse than none, so a writer that fails, or is
// destroyed before Close, removes its file. Internal to the renderer (flow_gif.h is the public
// interface). Not thread-safe; one writer per file.
#ifndef MOE_CLIENTS_VIEWER_RENDER_GIF_WRITER_H_
#define MOE_CLIENTS_VIEWER_RENDER_GIF_WRITER_H_

#include <gif_lib.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "clients/viewer/render/palette.h"

namespace moe::viewer::internal {

class GifWriter {
 public:
  // Creates or truncates `path`. InternalError "cannot open PATH for writing: ..." names the path;
  // callers add the flag that named it.
  static absl::StatusOr<std::unique_ptr<GifWriter>> Open(const std::string& path);

  GifWriter(const GifWriter&) = delete;
  GifWriter& operator=(const GifWriter&) = delete;

  // Removes the file unless Close succeeded.
  ~GifWriter();

  // Writes the screen descriptor, the palette and the loop extension; every frame shows for
  // delay_cs centiseconds. Call once, before AddFrame. InternalError "writing PATH: <step>: ..."
  // removes the file; so do the errors below.
  // REQUIRES: width and height in [1, 65535]; delay_cs in [0, 65535].
  absl::Status Start(int width, int height, const std::array<Rgb8, 256>& palette, int delay_cs);

  // Appends one full-screen frame. fill_row(y, row) writes row y's `width` palette indices into
  // row; it is called for y = 0 .. height - 1 in order. InternalError "writing PATH: frame N: ...".
  absl::Status AddFrame(absl::FunctionRef<void(int y, uint8_t* row)> fill_row);

  // Finishes the file. InternalError "writing PATH: closing: ..." removes it.
  absl::Status Close();

 private:
  GifWriter(std::string path, GifFileType* gif);

  // FailedPreconditionError when the writer is closed (or discarded after a failure).
  absl::Status CheckOpen() const;

  // Closes and removes the file after a failure at `step`.
  absl::Status Fail(absl::string_view step, int gif_error);
  void Discard();

  const std::string path_;
  GifFileType* gif_;  // null once closed or discarded
  bool started_ = false;
  int width_ = 0;
  int height_ = 0;
  int delay_cs_ = 0;
  int frames_ = 0;
};

}  // namespace moe::viewer::internal

#endif  // MOE_CLIENTS_VIEWER_RENDER_GIF_WRITER_H_
