// The GIF writer: what it writes decodes with giflib's reader, and no failure leaves a file.
#include "clients/viewer/render/gif_writer.h"

#include <gif_lib.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace moe::viewer::internal {
namespace {

std::string TempPath() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return absl::StrCat(::testing::TempDir(), "/", info->test_suite_name(), "_", info->name(),
                      ".gif");
}

bool FileExists(const std::string& path) { return std::ifstream(path).good(); }

std::array<Rgb8, 256> Grey() {
  std::array<Rgb8, 256> palette;
  for (int i = 0; i < 256; ++i) {
    palette[i] = {static_cast<uint8_t>(i), static_cast<uint8_t>(i), static_cast<uint8_t>(255 - i)};
  }
  return palette;
}

TEST(GifWriterTest, WritesPaletteFramesDelayAndLoop) {
  const std::string path = TempPath();
  absl::StatusOr<std::unique_ptr<GifWriter>> writer = GifWriter::Open(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Start(5, 3, Grey(), 7).ok());
  for (int frame = 0; frame < 2; ++frame) {
    ASSERT_TRUE((*writer)
                    ->AddFrame([frame](int y, uint8_t* row) {
                      for (int x = 0; x < 5; ++x)
                        row[x] = static_cast<uint8_t>(100 * frame + 10 * y + x);
                    })
                    .ok());
  }
  ASSERT_TRUE((*writer)->Close().ok());
  writer->reset();  // a closed writer keeps its file
  ASSERT_TRUE(FileExists(path));

  int error = 0;
  GifFileType* gif = DGifOpenFileName(path.c_str(), &error);
  ASSERT_NE(gif, nullptr) << GifErrorString(error);
  ASSERT_EQ(DGifSlurp(gif), GIF_OK) << GifErrorString(gif->Error);
  EXPECT_EQ(gif->SWidth, 5);
  EXPECT_EQ(gif->SHeight, 3);
  ASSERT_NE(gif->SColorMap, nullptr);
  ASSERT_EQ(gif->SColorMap->ColorCount, 256);
  EXPECT_EQ(gif->SColorMap->Colors[200].Red, 200);
  EXPECT_EQ(gif->SColorMap->Colors[200].Blue, 55);
  ASSERT_EQ(gif->ImageCount, 2);
  for (int frame = 0; frame < 2; ++frame) {
    const SavedImage& image = gif->SavedImages[frame];
    for (int y = 0; y < 3; ++y) {
      for (int x = 0; x < 5; ++x) {
        EXPECT_EQ(image.RasterBits[y * 5 + x], 100 * frame + 10 * y + x);
      }
    }
    GraphicsControlBlock gcb;
    ASSERT_EQ(DGifSavedExtensionToGCB(gif, frame, &gcb), GIF_OK);
    EXPECT_EQ(gcb.DelayTime, 7);
  }
  // DGifSlurp files the NETSCAPE2.0 block and its loop sub-block (count 0: forever) under the
  // first image.
  const SavedImage& first = gif->SavedImages[0];
  bool loops_forever = false;
  for (int j = 0; j + 1 < first.ExtensionBlockCount; ++j) {
    const ExtensionBlock& block = first.ExtensionBlocks[j];
    const ExtensionBlock& sub = first.ExtensionBlocks[j + 1];
    loops_forever |= block.Function == APPLICATION_EXT_FUNC_CODE && block.ByteCount == 11 &&
                     std::string(reinterpret_cast<char*>(block.Bytes), 11) == "NETSCAPE2.0" &&
                     sub.ByteCount == 3 && sub.Bytes[0] == 1 && sub.Bytes[1] == 0 &&
                     sub.Bytes[2] == 0;
  }
  EXPECT_TRUE(loops_forever);
  DGifCloseFile(gif, &error);
  std::remove(path.c_str());
}

TEST(GifWriterTest, UnopenablePathIsAnErrorNamingIt) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/no/such/dir/out.gif");
  const absl::StatusOr<std::unique_ptr<GifWriter>> writer = GifWriter::Open(path);
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StartsWith(writer.status().message(), absl::StrCat("cannot open ", path)))
      << writer.status();
}

TEST(GifWriterTest, WriterDroppedBeforeCloseLeavesNoFile) {
  const std::string path = TempPath();
  absl::StatusOr<std::unique_ptr<GifWriter>> writer = GifWriter::Open(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Start(4, 4, Grey(), 10).ok());
  ASSERT_TRUE((*writer)->AddFrame([](int, uint8_t* row) { std::fill(row, row + 4, 1); }).ok());
  EXPECT_TRUE(FileExists(path));
  writer->reset();  // as when drawing a frame fails half way through an animation
  EXPECT_FALSE(FileExists(path));
}

// A file size limit makes the writes fail part way through a frame, as a full disk would.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);  // fail with EFBIG instead of dying
    getrlimit(RLIMIT_FSIZE, &old_limit_);
    rlimit limit = old_limit_;
    limit.rlim_cur = bytes;
    ok_ = setrlimit(RLIMIT_FSIZE, &limit) == 0;
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_limit_);
    std::signal(SIGXFSZ, old_handler_);
  }
  bool ok() const { return ok_; }

 private:
  rlimit old_limit_;
  void (*old_handler_)(int);
  bool ok_ = false;
};

TEST(GifWriterTest, FailedWriteLeavesNoFileAndNamesIt) {
  const std::string path = TempPath();
  absl::Status added;
  {
    FileSizeLimit limit(1024);
    ASSERT_TRUE(limit.ok());
    absl::StatusOr<std::unique_ptr<GifWriter>> writer = GifWriter::Open(path);
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Start(256, 256, Grey(), 10).ok());
    // Noise compresses badly: far more than the limit.
    uint32_t state = 1;
    added = (*writer)->AddFrame([&state](int, uint8_t* row) {
      for (int x = 0; x < 256; ++x) {
        state = state * 1664525u + 1013904223u;
        row[x] = static_cast<uint8_t>(state >> 24);
      }
    });
    EXPECT_FALSE(FileExists(path));  // removed at the failure, not only when the writer goes
    EXPECT_EQ((*writer)->Close().code(), absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_EQ(added.code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StartsWith(added.message(), absl::StrCat("writing ", path, ": frame 0: ")))
      << added;
  EXPECT_FALSE(FileExists(path));
}

}  // namespace
}  // namespace moe::viewer::internal
