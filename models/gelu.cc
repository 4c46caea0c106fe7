#include "models/gelu.h"

#include <algorithm>

#include "models/vector_math.h"

namespace moe {
namespace {

[[gnu::always_inline]] inline V8 Gelu8(V8 x) {
  return 0.5f * x * (1.0f + Erf(x * 0.70710678118654752f));
}

[[gnu::always_inline]] inline void Gelu(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) Store8(x + i, Gelu8(Load8(x + i)));
  if (i < n) {
    float tail[8] = {};
    std::copy(x + i, x + n, tail);
    Store8(tail, Gelu8(Load8(tail)));
    std::copy(tail, tail + (n - i), x + i);
  }
}

MOE_TARGET_AVX512 void GeluAvx512(float* x, int64_t n) { Gelu(x, n); }
MOE_TARGET_AVX2 void GeluAvx2(float* x, int64_t n) { Gelu(x, n); }
void GeluBaseline(float* x, int64_t n) { Gelu(x, n); }

}  // namespace

void GeluInPlace(float* x, int64_t n, SimdLevel level) {
  switch (UsableSimdLevel(level)) {
    case SimdLevel::kAvx512:
      return GeluAvx512(x, n);
    case SimdLevel::kAvx2:
      return GeluAvx2(x, n);
    case SimdLevel::kBaseline:
      return GeluBaseline(x, n);
  }
}

}  // namespace moe
