// Animated GIF output through giflib; see gif_writer.h.
#include "clients/viewer/render/gif_writer.h"

#include <cstdio>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace moe::viewer::internal {
namespace {

struct ColorMapDeleter {
  void operator()(ColorMapObject* m) const { GifFreeMapObject(m); }
};

std::string GifError(int code) {
  const char* message = GifErrorString(code);
  return message != nullptr ? message : absl::StrCat("giflib error ", code);
}

}  // namespace

absl::StatusOr<std::unique_ptr<GifWriter>> GifWriter::Open(const std::string& path) {
  int error = 0;
  GifFileType* gif = EGifOpenFileName(path.c_str(), /*TestExistence=*/false, &error);
  if (gif == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot open ", path, " for writing: ", GifError(error)));
  }
  return std::unique_ptr<GifWriter>(new GifWriter(path, gif));
}

GifWriter::GifWriter(std::string path, GifFileType* gif) : path_(std::move(path)), gif_(gif) {}

GifWriter::~GifWriter() { Discard(); }

absl::Status GifWriter::CheckOpen() const {
  if (gif_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("writing ", path_, ": already closed"));
  }
  return absl::OkStatus();
}

absl::Status GifWriter::Start(int width, int height, const std::array<Rgb8, 256>& palette,
                              int delay_cs) {
  if (absl::Status s = CheckOpen(); !s.ok()) return s;
  if (started_) {
    return absl::FailedPreconditionError(absl::StrCat("writing ", path_, ": already started"));
  }
  started_ = true;
  width_ = width;
  height_ = height;
  delay_cs_ = delay_cs;
  std::array<GifColorType, 256> colors;
  for (int i = 0; i < 256; ++i) colors[i] = {palette[i].r, palette[i].g, palette[i].b};
  std::unique_ptr<ColorMapObject, ColorMapDeleter> color_map(GifMakeMapObject(256, colors.data()));
  if (color_map == nullptr) return Fail("colour map", E_GIF_ERR_NOT_ENOUGH_MEM);
  // Graphics control blocks and the loop extension need GIF89a.
  EGifSetGifVersion(gif_, true);
  if (EGifPutScreenDesc(gif_, width, height, 8, 0, color_map.get()) == GIF_ERROR) {
    return Fail("screen descriptor", gif_->Error);
  }
  // NETSCAPE2.0 application extension, sub-block 1 with loop count 0: loop forever.
  static const GifByteType kLoop[3] = {1, 0, 0};
  if (EGifPutExtensionLeader(gif_, APPLICATION_EXT_FUNC_CODE) == GIF_ERROR ||
      EGifPutExtensionBlock(gif_, 11, "NETSCAPE2.0") == GIF_ERROR ||
      EGifPutExtensionBlock(gif_, 3, kLoop) == GIF_ERROR ||
      EGifPutExtensionTrailer(gif_) == GIF_ERROR) {
    return Fail("loop extension", gif_->Error);
  }
  return absl::OkStatus();
}

absl::Status GifWriter::AddFrame(absl::FunctionRef<void(int y, uint8_t* row)> fill_row) {
  if (absl::Status s = CheckOpen(); !s.ok()) return s;
  if (!started_) {
    return absl::FailedPreconditionError(absl::StrCat("writing ", path_, ": frame before Start"));
  }
  const std::string step = absl::StrCat("frame ", frames_);
  GraphicsControlBlock gcb;
  gcb.DisposalMode = DISPOSE_DO_NOT;
  gcb.UserInputFlag = false;
  gcb.DelayTime = delay_cs_;
  gcb.TransparentColor = NO_TRANSPARENT_COLOR;
  GifByteType gcb_bytes[4];
  const size_t gcb_len = EGifGCBToExtension(&gcb, gcb_bytes);
  if (EGifPutExtension(gif_, GRAPHICS_EXT_FUNC_CODE, static_cast<int>(gcb_len), gcb_bytes) ==
          GIF_ERROR ||
      EGifPutImageDesc(gif_, 0, 0, width_, height_, false, nullptr) == GIF_ERROR) {
    return Fail(step, gif_->Error);
  }
  std::vector<GifPixelType> row(width_);
  for (int y = 0; y < height_; ++y) {
    fill_row(y, row.data());
    if (EGifPutLine(gif_, row.data(), width_) == GIF_ERROR) return Fail(step, gif_->Error);
  }
  ++frames_;
  return absl::OkStatus();
}

absl::Status GifWriter::Close() {
  if (absl::Status s = CheckOpen(); !s.ok()) return s;
  int error = 0;
  // giflib frees the handle whatever the outcome.
  const int result = EGifCloseFile(std::exchange(gif_, nullptr), &error);
  if (result == GIF_ERROR) {
    std::remove(path_.c_str());
    return absl::InternalError(absl::StrCat("writing ", path_, ": closing: ", GifError(error)));
  }
  return absl::OkStatus();
}

absl::Status GifWriter::Fail(absl::string_view step, int gif_error) {
  Discard();
  return absl::InternalError(
      absl::StrCat("writing ", path_, ": ", step, ": ", GifError(gif_error)));
}

void GifWriter::Discard() {
  if (gif_ == nullptr) return;
  int ignored = 0;
  EGifCloseFile(std::exchange(gif_, nullptr), &ignored);
  std::remove(path_.c_str());
}

}  // namespace moe::viewer::internal
