// SplitMix64: the one small, fast, platform-independent integer mixer behind every seeded choice
// (sampling, routing noise, token keys, event sampling). Torch-free, header-only.
#ifndef MOE_MODELS_SPLITMIX_H_
#define MOE_MODELS_SPLITMIX_H_

#include <cstdint>

namespace moe {

inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace moe

#endif  // MOE_MODELS_SPLITMIX_H_
