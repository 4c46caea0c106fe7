#include "models/layer_norm.h"

#include <cmath>

#include "models/vector_math.h"

namespace moe {
namespace {

[[gnu::always_inline]] inline void Normalize(const float* x, int64_t rows, int64_t c,
                                             const float* weight, const float* bias, float eps,
                                             float* out) {
  const int64_t whole = c / 8 * 8;
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * c;
    float* o = out + r * c;
    V8 acc{};
    for (int64_t i = 0; i < whole; i += 8) acc += Load8(in + i);
    float sum = Sum8(acc);
    for (int64_t i = whole; i < c; ++i) sum += in[i];
    const float mean = sum / static_cast<float>(c);
    acc = V8{};
    for (int64_t i = 0; i < whole; i += 8) {
      const V8 d = Load8(in + i) - mean;
      acc += d * d;
    }
    float squares = Sum8(acc);
    for (int64_t i = whole; i < c; ++i) squares += (in[i] - mean) * (in[i] - mean);
    const float inv = 1.0f / std::sqrt(squares / static_cast<float>(c) + eps);
    for (int64_t i = 0; i < whole; i += 8) {
      Store8(o + i, (Load8(in + i) - mean) * inv * Load8(weight + i) + Load8(bias + i));
    }
    for (int64_t i = whole; i < c; ++i) o[i] = (in[i] - mean) * inv * weight[i] + bias[i];
  }
}

MOE_TARGET_AVX512 void NormalizeAvx512(const float* x, int64_t rows, int64_t c, const float* w,
                                       const float* b, float eps, float* out) {
  Normalize(x, rows, c, w, b, eps, out);
}
MOE_TARGET_AVX2 void NormalizeAvx2(const float* x, int64_t rows, int64_t c, const float* w,
                                   const float* b, float eps, float* out) {
  Normalize(x, rows, c, w, b, eps, out);
}
void NormalizeBaseline(const float* x, int64_t rows, int64_t c, const float* w, const float* b,
                       float eps, float* out) {
  Normalize(x, rows, c, w, b, eps, out);
}

}  // namespace

void LayerNormRows(const float* x, int64_t rows, int64_t c, const float* weight, const float* bias,
                   float eps, float* out, SimdLevel level) {
  switch (UsableSimdLevel(level)) {
    case SimdLevel::kAvx512:
      return NormalizeAvx512(x, rows, c, weight, bias, eps, out);
    case SimdLevel::kAvx2:
      return NormalizeAvx2(x, rows, c, weight, bias, eps, out);
    case SimdLevel::kBaseline:
      return NormalizeBaseline(x, rows, c, weight, bias, eps, out);
  }
}

}  // namespace moe
