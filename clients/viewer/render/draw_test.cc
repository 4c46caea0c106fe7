// Text fitting and Bezier geometry of the cairo helpers.
#include "clients/viewer/render/draw.h"

#include <cairo.h>

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace moe::viewer::internal {
namespace {

constexpr char kEllipsis[] = "\u2026";

class FitTextTest : public ::testing::Test {
 protected:
  FitTextTest()
      : surface_(cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 64, 64)),
        cr_(cairo_create(surface_.get())) {
    SetFont(cr_.get(), 14, false);
  }

  SurfacePtr surface_;
  CairoPtr cr_;
};

TEST_F(FitTextTest, TextThatFitsIsKeptWhole) {
  EXPECT_EQ(FitText(cr_.get(), "fox", 1000), "fox");
  EXPECT_EQ(FitText(cr_.get(), "", 1000), "");
}

TEST_F(FitTextTest, TextIsSanitizedBeforeItIsMeasured) {
  // Cairo puts a context into a sticky error state on invalid UTF-8.
  EXPECT_EQ(FitText(cr_.get(), "a\nb", 1000), "a\u21b5b");
  EXPECT_EQ(FitText(cr_.get(), "\xe2\x82", 1000), "\ufffd\ufffd");
  EXPECT_EQ(cairo_status(cr_.get()), CAIRO_STATUS_SUCCESS);
}

TEST_F(FitTextTest, LongTextIsCutAtCodePointsToFitWithAnEllipsis) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "\u00e9";  // two bytes each
  const std::string fitted = FitText(cr_.get(), text, 60);
  ASSERT_TRUE(absl::EndsWith(fitted, kEllipsis)) << fitted;
  const std::string kept = fitted.substr(0, fitted.size() - sizeof(kEllipsis) + 1);
  EXPECT_FALSE(kept.empty());
  EXPECT_LT(kept.size(), text.size());
  EXPECT_EQ(kept.size() % 2, 0u) << "a code point was split: " << kept;
  EXPECT_LE(TextWidth(cr_.get(), fitted), 60);
}

TEST_F(FitTextTest, VeryLongTextIsBoundedEvenWhenItWouldFit) {
  const std::string fitted = FitText(cr_.get(), std::string(10000, 'x'), 1e9);
  EXPECT_EQ(fitted, std::string(160, 'x') + kEllipsis);
}

TEST_F(FitTextTest, NoRoomLeavesOnlyTheEllipsis) {
  EXPECT_EQ(FitText(cr_.get(), "router", 0), kEllipsis);
}

TEST(QuadBezierTest, RunsFromFirstToLastPointPulledByTheControl) {
  const Point p0{0, 0}, c{10, 20}, p2{40, 0};
  EXPECT_DOUBLE_EQ(QuadBezier(p0, c, p2, 0).x, 0);
  EXPECT_DOUBLE_EQ(QuadBezier(p0, c, p2, 1).x, 40);
  const Point mid = QuadBezier(p0, c, p2, 0.5);  // p0/4 + c/2 + p2/4
  EXPECT_DOUBLE_EQ(mid.x, 15);
  EXPECT_DOUBLE_EQ(mid.y, 10);
}

}  // namespace
}  // namespace moe::viewer::internal
