// Renders small GIFs and decodes them with giflib: frame count, size, timing, looping, motion.
#include "clients/viewer/render/flow_gif.h"

#include <gif_lib.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

// Fontconfig, which cairo asks for fonts, keeps its parsed configuration for the life of the
// process; LeakSanitizer (the MOE_SANITIZE build) would fail every test that draws text over it.
extern "C" const char* __lsan_default_suppressions() { return "leak:libfontconfig.so\n"; }

namespace moe::viewer {
namespace {

struct DecodedGif {
  int width = 0;
  int height = 0;
  std::vector<std::vector<GifByteType>> frames;  // full-screen frames only
  std::vector<int> delays_cs;
  bool loops_forever = false;
};

// Decodes with giflib's own reader, so the test checks what any viewer would see.
DecodedGif Decode(const std::string& path) {
  DecodedGif out;
  int error = 0;
  GifFileType* gif = DGifOpenFileName(path.c_str(), &error);
  EXPECT_NE(gif, nullptr) << GifErrorString(error);
  if (gif == nullptr) return out;
  EXPECT_EQ(DGifSlurp(gif), GIF_OK) << GifErrorString(gif->Error);
  out.width = gif->SWidth;
  out.height = gif->SHeight;
  for (int i = 0; i < gif->ImageCount; ++i) {
    const SavedImage& image = gif->SavedImages[i];
    EXPECT_EQ(image.ImageDesc.Width, gif->SWidth);
    EXPECT_EQ(image.ImageDesc.Height, gif->SHeight);
    out.frames.emplace_back(image.RasterBits,
                            image.RasterBits + image.ImageDesc.Width * image.ImageDesc.Height);
    GraphicsControlBlock gcb;
    EXPECT_EQ(DGifSavedExtensionToGCB(gif, i, &gcb), GIF_OK);
    out.delays_cs.push_back(gcb.DelayTime);
    for (int j = 0; j < image.ExtensionBlockCount; ++j) {
      const ExtensionBlock& block = image.ExtensionBlocks[j];
      // DGifSlurp files the NETSCAPE2.0 block and its loop sub-block under the first image.
      if (block.Function == APPLICATION_EXT_FUNC_CODE && block.ByteCount == 11 &&
          std::string(reinterpret_cast<char*>(block.Bytes), 11) == "NETSCAPE2.0" &&
          j + 1 < image.ExtensionBlockCount) {
        const ExtensionBlock& sub = image.ExtensionBlocks[j + 1];
        out.loops_forever =
            sub.ByteCount == 3 && sub.Bytes[0] == 1 && sub.Bytes[1] == 0 && sub.Bytes[2] == 0;
      }
    }
  }
  DGifCloseFile(gif, &error);
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool FileExists(const std::string& path) { return std::ifstream(path).good(); }

std::string TempPath(absl::string_view suffix) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return absl::StrCat(::testing::TempDir(), "/", info->test_suite_name(), "_", info->name(),
                      suffix);
}

FlowLayout Layout() { return {/*n_experts=*/8, /*granularity=*/4, /*n_shared=*/1, /*top_k=*/4}; }

std::vector<FlowToken> Tokens() {
  const auto choice = [](int expert, int micro, float weight) {
    return FlowChoice{expert * 4 + micro, expert, micro, weight};
  };
  return {
      {"The", true, 0, {choice(3, 1, 0.5f), choice(0, 2, 0.3f), choice(6, 0, 0.2f)}, {0}},
      {" quick", true, 1, {choice(1, 3, 0.7f), choice(5, 0, 0.2f), choice(7, 2, 0.1f)}, {0}},
      {" fox", false, 2, {choice(2, 0, 0.4f), choice(2, 3, 0.35f), choice(4, 1, 0.25f)}, {0}},
  };
}

GifOptions SmallOptions(const std::string& out) {
  GifOptions options;
  options.out = out;
  options.frames = 6;
  options.fps = 10;
  options.width = 240;
  options.height = 140;
  return options;
}

TEST(RenderFlowGifTest, WritesRequestedFramesAtRequestedSize) {
  const std::string path = TempPath(".gif");
  const std::vector<FlowToken> tokens = Tokens();
  ASSERT_TRUE(RenderFlowGif(Layout(), tokens, SmallOptions(path)).ok());

  EXPECT_EQ(ReadFile(path).substr(0, 6), "GIF89a");
  const DecodedGif gif = Decode(path);
  EXPECT_EQ(gif.width, 240);
  EXPECT_EQ(gif.height, 140);
  EXPECT_EQ(gif.frames.size(), 6u);
  EXPECT_TRUE(gif.loops_forever);
  for (int delay : gif.delays_cs) EXPECT_EQ(delay, 10);  // 100 / fps
  std::remove(path.c_str());
}

TEST(RenderFlowGifTest, FramesDiffer) {
  const std::string path = TempPath(".gif");
  const std::vector<FlowToken> tokens = Tokens();
  GifOptions options = SmallOptions(path);
  options.frames = 8;
  ASSERT_TRUE(RenderFlowGif(Layout(), tokens, options).ok());
  const DecodedGif gif = Decode(path);
  ASSERT_EQ(gif.frames.size(), 8u);
  int distinct_pairs = 0;
  for (size_t i = 1; i < gif.frames.size(); ++i) distinct_pairs += gif.frames[i] != gif.frames[0];
  EXPECT_GE(distinct_pairs, 1);
  // Something moves every frame (packets, pulses), not only when the token changes.
  EXPECT_NE(gif.frames[1], gif.frames[2]);
  std::remove(path.c_str());
}

TEST(RenderFlowGifTest, FewTokensCycleAndManyFramesPerTokenWork) {
  const std::string path = TempPath(".gif");
  const std::vector<FlowToken> tokens = {Tokens()[0]};
  GifOptions options = SmallOptions(path);
  options.frames = 9;
  options.frames_per_token = 2;
  ASSERT_TRUE(RenderFlowGif(Layout(), tokens, options).ok());
  EXPECT_EQ(Decode(path).frames.size(), 9u);
  std::remove(path.c_str());
}

TEST(RenderFlowGifTest, SameSeedSameGifOtherSeedOtherPackets) {
  const std::vector<FlowToken> tokens = Tokens();
  std::string bytes[3];
  for (int i = 0; i < 3; ++i) {
    GifOptions options = SmallOptions(TempPath(absl::StrCat("_", i, ".gif")));
    options.seed = i < 2 ? 7 : 8;
    ASSERT_TRUE(RenderFlowGif(Layout(), tokens, options).ok());
    bytes[i] = ReadFile(options.out);
    std::remove(options.out.c_str());
  }
  EXPECT_EQ(bytes[0], bytes[1]);
  EXPECT_NE(bytes[0], bytes[2]);
}

TEST(RenderFlowGifTest, AwkwardTokenTextStillRenders) {
  // Cairo puts a context into a sticky error state on invalid UTF-8; the text must be sanitized.
  const std::string path = TempPath(".gif");
  std::vector<FlowToken> tokens = Tokens();
  tokens[0].text = "\xe2\x82\n\t";
  tokens[1].text = std::string(500, 'x');
  tokens[2].text = "";
  GifOptions options = SmallOptions(path);
  options.frames_per_token = 1;
  const absl::Status status = RenderFlowGif(Layout(), tokens, options);
  EXPECT_TRUE(status.ok()) << status;
  std::remove(path.c_str());
}

TEST(RenderFlowGifTest, BadOptionsNameTheFlag) {
  const std::vector<FlowToken> tokens = Tokens();
  const std::string path = TempPath(".gif");
  struct Case {
    std::function<void(GifOptions&)> change;
    std::string message;
  };
  const Case cases[] = {
      {[](GifOptions& o) { o.fps = 0; }, "--fps: must be in [1, 100], got 0"},
      {[](GifOptions& o) { o.fps = 101; }, "--fps: must be in [1, 100], got 101"},
      {[](GifOptions& o) { o.frames = 0; }, "--frames: must be >= 1, got 0"},
      {[](GifOptions& o) { o.width = 63; }, "--width: must be in [64, 4096], got 63"},
      {[](GifOptions& o) { o.height = 4097; }, "--height: must be in [64, 4096], got 4097"},
      {[](GifOptions& o) { o.dot_period = 0; }, "--dot_period: must be > 0, got 0"},
      {[](GifOptions& o) { o.frames_per_token = -1; }, "--frames_per_token: must be >= 0, got -1"},
      {[](GifOptions& o) { o.out.clear(); }, "--out: must not be empty"},
  };
  for (const Case& c : cases) {
    GifOptions options = SmallOptions(path);
    c.change(options);
    const absl::Status status = RenderFlowGif(Layout(), tokens, options);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_EQ(status.message(), c.message);
    EXPECT_FALSE(FileExists(path));
  }
}

TEST(RenderFlowGifTest, NoTokensIsAnError) {
  const absl::Status status = RenderFlowGif(Layout(), {}, SmallOptions(TempPath(".gif")));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), "tokens")) << status;
}

TEST(RenderFlowGifTest, ChoiceOutsideLayoutIsAnError) {
  std::vector<FlowToken> tokens = Tokens();
  tokens[1].experts[0].expert = 9;
  absl::Status status = RenderFlowGif(Layout(), tokens, SmallOptions(TempPath(".gif")));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "token 1 layer 1: expert 9 not in [0, 8)");

  tokens = Tokens();
  tokens[2].shared = {1};
  status = RenderFlowGif(Layout(), tokens, SmallOptions(TempPath(".gif")));
  EXPECT_EQ(status.message(), "token 2 layer 2: shared expert 1 not in [0, 1)");
}

TEST(RenderFlowGifTest, UnwritablePathIsAnErrorNamingIt) {
  const std::string path = TempPath("/no/such/dir/out.gif");
  const std::vector<FlowToken> tokens = Tokens();
  const absl::Status status = RenderFlowGif(Layout(), tokens, SmallOptions(path));
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StrContains(status.message(), path)) << status;
}

TEST(RenderFlowFramePngTest, WritesAPng) {
  const std::string path = TempPath(".png");
  const std::vector<FlowToken> tokens = Tokens();
  ASSERT_TRUE(RenderFlowFramePng(Layout(), tokens, SmallOptions(path), 3).ok());
  EXPECT_EQ(ReadFile(path).substr(0, 8), "\x89PNG\r\n\x1a\n");
  std::remove(path.c_str());
}

}  // namespace
}  // namespace moe::viewer
