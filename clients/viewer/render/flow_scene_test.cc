// The flow scene's timing, its validation of layouts and tokens, and frames that depend only on
// their number.
#include "clients/viewer/render/flow_scene.h"

#include <cairo.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace moe::viewer::internal {
namespace {

FlowLayout Layout() { return {/*n_experts=*/4, /*granularity=*/2, /*n_shared=*/1, /*top_k=*/2}; }

std::vector<FlowToken> Tokens() {
  return {
      {"a", true, 0, {{1, 0, 1, 0.6f}, {6, 3, 0, 0.4f}}, {0}},
      {"b", false, 0, {{4, 2, 0, 0.9f}, {3, 1, 1, 0.1f}}, {0}},
  };
}

GifOptions Options(int fps) {
  GifOptions options;
  options.out = "unused.gif";
  options.fps = fps;
  options.width = 180;
  options.height = 100;
  return options;
}

TEST(FlowSceneTest, DelayIsTheFrameRateInWholeCentiseconds) {
  const std::vector<FlowToken> tokens = Tokens();
  EXPECT_EQ(FlowScene(Layout(), tokens, Options(10)).delay_cs(), 10);
  EXPECT_EQ(FlowScene(Layout(), tokens, Options(12)).delay_cs(), 8);  // 8.33 rounds
  EXPECT_EQ(FlowScene(Layout(), tokens, Options(30)).delay_cs(), 3);
  EXPECT_EQ(FlowScene(Layout(), tokens, Options(1)).delay_cs(), 100);
  EXPECT_EQ(FlowScene(Layout(), tokens, Options(100)).delay_cs(), 1);
}

TEST(FlowSceneTest, ValidateSceneNamesWhatItCannotDraw) {
  const std::vector<FlowToken> tokens = Tokens();
  EXPECT_TRUE(ValidateScene(Layout(), tokens).ok());

  FlowLayout layout = Layout();
  layout.n_experts = 0;
  EXPECT_EQ(ValidateScene(layout, tokens).message(),
            "layout: n_experts must be in [1, 1024], got 0");
  layout = Layout();
  layout.granularity = 65;
  EXPECT_EQ(ValidateScene(layout, tokens).message(),
            "layout: granularity must be in [1, 64], got 65");
  layout = Layout();
  layout.n_shared = -1;
  EXPECT_EQ(ValidateScene(layout, tokens).message(), "layout: n_shared must be in [0, 64], got -1");

  std::vector<FlowToken> bad = Tokens();
  bad[1].experts[1].micro = 2;
  const absl::Status status = ValidateScene(Layout(), bad);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "token 1 layer 0: micro 2 not in [0, 2)");
  EXPECT_EQ(ValidateScene(Layout(), {}).message(), "tokens: no routed tokens to draw");
}

// The pixels of frame `frame`, drawn on a fresh surface.
std::vector<unsigned char> Pixels(const FlowScene& scene, int frame) {
  SurfacePtr surface(cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 180, 100));
  CairoPtr cr(cairo_create(surface.get()));
  scene.Draw(cr.get(), frame);
  EXPECT_EQ(cairo_status(cr.get()), CAIRO_STATUS_SUCCESS);
  cairo_surface_flush(surface.get());
  const unsigned char* data = cairo_image_surface_get_data(surface.get());
  return {data, data + 100 * cairo_image_surface_get_stride(surface.get())};
}

TEST(FlowSceneTest, FramesDependOnlyOnTheirNumber) {
  const std::vector<FlowToken> tokens = Tokens();
  const FlowScene scene(Layout(), tokens, Options(10));
  const std::vector<unsigned char> five = Pixels(scene, 5);
  const std::vector<unsigned char> two = Pixels(scene, 2);
  EXPECT_NE(five, two);
  EXPECT_EQ(Pixels(scene, 5), five);
}

}  // namespace
}  // namespace moe::viewer::internal
