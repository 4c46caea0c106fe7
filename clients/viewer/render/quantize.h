// The fixed 256-colour palette every frame of the flow GIF is mapped to, and the mapping of cairo
// pixels onto it. Internal to the renderer (flow_gif.h is the public interface). Immutable after
// construction; thread-safe.
#ifndef MOE_CLIENTS_VIEWER_RENDER_QUANTIZE_H_
#define MOE_CLIENTS_VIEWER_RENDER_QUANTIZE_H_

#include <array>
#include <cstdint>
#include <vector>

#include "clients/viewer/render/palette.h"

namespace moe::viewer::internal {

// Theme colours and expert colours are exact entries (flat areas stay flat instead of drifting to
// a cube corner), expert colours blended into the background give glows two in-between steps, and
// a 6x6x6 cube catches the rest. Construction fills a lookup table of 2^18 colour bins against
// all 256 entries, so build one per animation, not per frame.
class Quantizer {
 public:
  Quantizer();

  const std::array<Rgb8, 256>& colors() const { return colors_; }

  // Maps one row of `width` cairo ARGB32 pixels to palette indices in out[0, width). The alpha
  // byte is ignored: the scene paints an opaque background first.
  void MapRow(const uint32_t* argb, int width, uint8_t* out) const;

 private:
  std::array<Rgb8, 256> colors_;
  std::vector<uint8_t> lut_;  // colour bin -> palette index
};

}  // namespace moe::viewer::internal

#endif  // MOE_CLIENTS_VIEWER_RENDER_QUANTIZE_H_
