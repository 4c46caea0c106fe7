// The GIF palette: exact theme and expert colours, and a lookup that lands near every colour.
#include "clients/viewer/render/quantize.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "clients/viewer/render/palette.h"
#include "gtest/gtest.h"

namespace moe::viewer::internal {
namespace {

uint32_t Argb(Rgb8 c, uint8_t alpha = 0xff) {
  return uint32_t{alpha} << 24 | uint32_t{c.r} << 16 | uint32_t{c.g} << 8 | c.b;
}

Rgb8 MapOne(const Quantizer& q, uint32_t argb) {
  uint8_t index = 0;
  q.MapRow(&argb, 1, &index);
  return q.colors()[index];
}

std::string Hex(Rgb8 c) { return absl::StrFormat("#%02x%02x%02x", c.r, c.g, c.b); }

// Flat areas of the scene are painted in these, so they must come out of the GIF unchanged.
std::vector<Rgb8> SceneColors() {
  std::vector<Rgb8> colors = {
      kBackground, kPanel,  kPanelBorder, kMuted,        kTextDim,
      kText,       kShared, kWhite,       Rgb8{0, 0, 0}, Mix(kBackground, kShared, 0.3)};
  for (Rgb8 c : kExpertColors) {
    colors.push_back(c);
    colors.push_back(Mix(kBackground, c, 0.3));
    colors.push_back(Mix(kBackground, c, 0.6));
  }
  return colors;
}

TEST(QuantizerTest, SceneColoursMapToThemselves) {
  const Quantizer q;
  for (Rgb8 c : SceneColors()) EXPECT_EQ(Hex(MapOne(q, Argb(c))), Hex(c));
}

TEST(QuantizerTest, CubeCornersMapToThemselves) {
  const Quantizer q;
  for (int r = 0; r < 6; ++r) {
    for (int g = 0; g < 6; ++g) {
      for (int b = 0; b < 6; ++b) {
        const Rgb8 c{static_cast<uint8_t>(51 * r), static_cast<uint8_t>(51 * g),
                     static_cast<uint8_t>(51 * b)};
        EXPECT_EQ(Hex(MapOne(q, Argb(c))), Hex(c));
      }
    }
  }
}

TEST(QuantizerTest, EveryColourLandsNearby) {
  const Quantizer q;
  // The cube alone has an entry within half a step (25.5) per channel; the lookup bins add 2.
  constexpr int kLimit = (2 + 4 + 3) * 28 * 28;
  for (int r = 0; r < 256; r += 5) {
    for (int g = 0; g < 256; g += 5) {
      for (int b = 0; b < 256; b += 5) {
        const Rgb8 c{static_cast<uint8_t>(r), static_cast<uint8_t>(g), static_cast<uint8_t>(b)};
        const Rgb8 m = MapOne(q, Argb(c));
        const int dr = r - m.r, dg = g - m.g, db = b - m.b;
        ASSERT_LE(2 * dr * dr + 4 * dg * dg + 3 * db * db, kLimit) << Hex(c) << " -> " << Hex(m);
      }
    }
  }
}

TEST(QuantizerTest, MapRowIgnoresAlpha) {
  const Quantizer q;
  const uint32_t row[] = {Argb(kPanel, 0xff), Argb(kPanel, 0x00), Argb(kText, 0x80)};
  uint8_t out[3];
  q.MapRow(row, 3, out);
  EXPECT_EQ(out[0], out[1]);
  EXPECT_EQ(Hex(q.colors()[out[2]]), Hex(kText));
}

}  // namespace
}  // namespace moe::viewer::internal
