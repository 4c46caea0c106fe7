#include "models/decode_attention.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

// The vector helpers below are always inlined, so their vector arguments never cross a call
// (GCC warns that passing them would differ between the AVX and baseline ABIs).
#pragma GCC diagnostic ignored "-Wpsabi"

namespace moe {
namespace {

// 8 floats: one ymm register with AVX2 or AVX-512, two xmm otherwise.
typedef float V8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));

[[gnu::always_inline]] inline V8 Splat(float f) { return V8{} + f; }

// e^x, 8 at a time: Cephes' expf (x = n ln 2 + r, |r| <= ln 2 / 2, e^r by a degree-5
// polynomial: about 1 ulp), with x floored at -87 (e^-87 ~ 1.6e-38, the smallest normal float
// the 2^n step can build). Used on scores minus their maximum, so x <= 0.
[[gnu::always_inline]] inline V8 Exp(V8 x) {
  const V8 lo = Splat(-87.0f);
  x = x < lo ? lo : x;
  const V8 magic = Splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const V8 n = (x * 1.44269504088896341f + magic) - magic;
  const V8 r = x - n * 0.693359375f + n * 2.12194440e-4f;
  V8 p = Splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const V8 e = p * (r * r) + r + 1.0f;
  const I8 bits = (__builtin_convertvector(n, I8) + 127) << 23;
  V8 two_n;
  std::memcpy(&two_n, &bits, sizeof(two_n));
  return e * two_n;
}

[[gnu::always_inline]] inline float Dot(const float* __restrict a, const float* __restrict b,
                                        int64_t n) {
  V8 acc{};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    V8 x, y;
    std::memcpy(&x, a + i, sizeof(x));
    std::memcpy(&y, b + i, sizeof(y));
    acc += x * y;
  }
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

[[gnu::always_inline]] inline void Attend(const DecodeAttentionArgs& a, float* __restrict p) {
  for (int64_t i = 0; i < a.b; ++i) {
    const int64_t n = a.len[i];
    for (int64_t j = 0; j < a.h; ++j) {
      const float* q = a.q + i * a.q_stride + j * a.d;
      const float* keys = a.keys + i * a.seq_stride + j * a.head_stride;
      const float* values = a.values + i * a.seq_stride + j * a.head_stride;
      float* __restrict y = a.out + (i * a.h + j) * a.d;
      float max = -std::numeric_limits<float>::infinity();
      for (int64_t l = 0; l < n; ++l) {
        p[l] = Dot(q, keys + l * a.d, a.d) * a.scale;
        max = std::max(max, p[l]);
      }
      // Softmax numerators; p has room for a whole last vector.
      const int64_t rounded = (n + 7) / 8 * 8;
      for (int64_t l = n; l < rounded; ++l) p[l] = max;
      for (int64_t l = 0; l < rounded; l += 8) {
        V8 v;
        std::memcpy(&v, p + l, sizeof(v));
        v = Exp(v - max);
        std::memcpy(p + l, &v, sizeof(v));
      }
      float sum = 0;
      for (int64_t l = 0; l < n; ++l) sum += p[l];
      for (int64_t c = 0; c < a.d; ++c) y[c] = 0;
      for (int64_t l = 0; l < n; ++l) {
        const float w = p[l];
        const float* __restrict v = values + l * a.d;
        for (int64_t c = 0; c < a.d; ++c) y[c] += w * v[c];
      }
      const float inv = 1.0f / sum;
      for (int64_t c = 0; c < a.d; ++c) y[c] *= inv;
    }
  }
}

MOE_TARGET_AVX512 void AttendAvx512(const DecodeAttentionArgs& a, float* p) { Attend(a, p); }
MOE_TARGET_AVX2 void AttendAvx2(const DecodeAttentionArgs& a, float* p) { Attend(a, p); }
void AttendBaseline(const DecodeAttentionArgs& a, float* p) { Attend(a, p); }

}  // namespace

void DecodeAttention(const DecodeAttentionArgs& args, SimdLevel level) {
  if (args.b <= 0) return;
  const int64_t longest = *std::max_element(args.len, args.len + args.b);
  std::vector<float> scratch((longest + 7) / 8 * 8);
  switch (CpuSupports(level) ? level : SimdLevel::kBaseline) {
    case SimdLevel::kAvx512:
      return AttendAvx512(args, scratch.data());
    case SimdLevel::kAvx2:
      return AttendAvx2(args, scratch.data());
    case SimdLevel::kBaseline:
      return AttendBaseline(args, scratch.data());
  }
}

}  // namespace moe
