// The flow GIF's palette and its colour lookup table; see quantize.h.
#include "clients/viewer/render/quantize.h"

namespace moe::viewer::internal {
namespace {

constexpr int kLutBits = 6;  // per channel: 2^18 bins keeps near-identical theme colours apart

// Ten theme colours and three shades per expert colour come before the cube; more would overflow
// the palette instead of only trimming the cube.
static_assert(10 + 3 * kNumExpertColors <= 256, "too many fixed colours for a 256-colour palette");

}  // namespace

Quantizer::Quantizer() {
  int n = 0;
  for (Rgb8 c : {kBackground, kPanel, kPanelBorder, kMuted, kTextDim, kText, kShared, kWhite,
                 Rgb8{0, 0, 0}, Mix(kBackground, kShared, 0.3)}) {
    colors_[n++] = c;
  }
  for (Rgb8 c : kExpertColors) {
    colors_[n++] = c;
    colors_[n++] = Mix(kBackground, c, 0.3);
    colors_[n++] = Mix(kBackground, c, 0.6);
  }
  for (int r = 0; r < 6 && n < 256; ++r) {
    for (int g = 0; g < 6 && n < 256; ++g) {
      for (int b = 0; b < 6 && n < 256; ++b) {
        colors_[n++] = {static_cast<uint8_t>(51 * r), static_cast<uint8_t>(51 * g),
                        static_cast<uint8_t>(51 * b)};
      }
    }
  }
  while (n < 256) colors_[n++] = kBackground;

  constexpr int kSide = 1 << kLutBits;
  constexpr int kShift = 8 - kLutBits;
  lut_.resize(kSide * kSide * kSide);
  for (int r = 0; r < kSide; ++r) {
    for (int g = 0; g < kSide; ++g) {
      for (int b = 0; b < kSide; ++b) {
        const int cr = (r << kShift) + (1 << kShift) / 2;
        const int cg = (g << kShift) + (1 << kShift) / 2;
        const int cb = (b << kShift) + (1 << kShift) / 2;
        int best = 0;
        int best_d = 1 << 30;
        for (int i = 0; i < 256; ++i) {
          const int dr = cr - colors_[i].r;
          const int dg = cg - colors_[i].g;
          const int db = cb - colors_[i].b;
          // The eye is most sensitive to green, least to blue.
          const int d = 2 * dr * dr + 4 * dg * dg + 3 * db * db;
          if (d < best_d) best_d = d, best = i;
        }
        lut_[(r << (2 * kLutBits)) | (g << kLutBits) | b] = static_cast<uint8_t>(best);
      }
    }
  }
}

void Quantizer::MapRow(const uint32_t* argb, int width, uint8_t* out) const {
  constexpr int kShift = 8 - kLutBits;
  constexpr uint32_t kMask = (1u << kLutBits) - 1;
  for (int x = 0; x < width; ++x) {
    const uint32_t p = argb[x];
    const uint32_t r = (p >> (16 + kShift)) & kMask;
    const uint32_t g = (p >> (8 + kShift)) & kMask;
    const uint32_t b = (p >> kShift) & kMask;
    out[x] = lut_[(r << (2 * kLutBits)) | (g << kLutBits) | b];
  }
}

}  // namespace moe::viewer::internal
