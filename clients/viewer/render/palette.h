// Colours shared by the viewer's renderers, so an expert has the same colour in the flow GIF and in
// the terminal dashboard, and Mix for the blends between them. Plain constants and pure functions;
// thread-safe.
#ifndef MOE_CLIENTS_VIEWER_RENDER_PALETTE_H_
#define MOE_CLIENTS_VIEWER_RENDER_PALETTE_H_

#include <cmath>
#include <cstdint>

namespace moe::viewer {

struct Rgb8 {
  uint8_t r = 0;
  uint8_t g = 0;
  uint8_t b = 0;
};

// Bright enough to read on the dark background; neighbours differ in hue so adjacent expert ids
// stay distinguishable. Experts beyond the list reuse it cyclically.
inline constexpr Rgb8 kExpertColors[] = {
    {0x60, 0xa5, 0xfa},  // blue
    {0xfb, 0x92, 0x3c},  // orange
    {0x4a, 0xde, 0x80},  // green
    {0xf8, 0x71, 0x71},  // red
    {0xa7, 0x8b, 0xfa},  // violet
    {0xfa, 0xcc, 0x15},  // yellow
    {0x22, 0xd3, 0xee},  // cyan
    {0xf4, 0x72, 0xb6},  // pink
    {0xa3, 0xe6, 0x35},  // lime
    {0xc4, 0xa4, 0x84},  // sand
};
inline constexpr int kNumExpertColors = sizeof(kExpertColors) / sizeof(kExpertColors[0]);

inline constexpr Rgb8 ExpertColor(int expert) {
  return kExpertColors[((expert % kNumExpertColors) + kNumExpertColors) % kNumExpertColors];
}

// Theme of the GIF, dark like the web viewer.
inline constexpr Rgb8 kBackground = {0x0b, 0x10, 0x20};
inline constexpr Rgb8 kPanel = {0x16, 0x1e, 0x33};
inline constexpr Rgb8 kPanelBorder = {0x2a, 0x35, 0x4f};
inline constexpr Rgb8 kMuted = {0x47, 0x55, 0x69};
inline constexpr Rgb8 kTextDim = {0x94, 0xa3, 0xb8};
inline constexpr Rgb8 kText = {0xe2, 0xe8, 0xf0};
inline constexpr Rgb8 kShared = {0xcb, 0xd5, 0xe1};  // shared experts: neutral, always on
inline constexpr Rgb8 kWhite = {0xff, 0xff, 0xff};

// The colour t of the way from a to b (t in [0, 1]), rounded per channel. The GIF's palette holds
// the same blends the scene paints, so they survive quantization exactly.
inline Rgb8 Mix(Rgb8 a, Rgb8 b, double t) {
  const auto lerp = [t](uint8_t u, uint8_t v) {
    return static_cast<uint8_t>(std::lround(u + (v - u) * t));
  };
  return {lerp(a.r, b.r), lerp(a.g, b.g), lerp(a.b, b.b)};
}

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_RENDER_PALETTE_H_
