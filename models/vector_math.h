// 8-float vectors and the few functions on them that the hand-written kernels share. For .cc
// files of kernels only: every function is always inlined into the kernel that calls it, and so
// compiled for that kernel's instruction set (simd.h).
#ifndef MOE_MODELS_VECTOR_MATH_H_
#define MOE_MODELS_VECTOR_MATH_H_

#include <cstdint>
#include <cstring>

// Vector arguments never cross a call here (always inlined), so GCC's note that passing them
// would differ between the AVX and baseline ABIs does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace moe {

// 8 floats: one ymm register with AVX2 or AVX-512, two xmm otherwise.
typedef float V8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));

[[gnu::always_inline]] inline V8 Splat(float f) { return V8{} + f; }

[[gnu::always_inline]] inline V8 Load8(const float* p) {
  V8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

[[gnu::always_inline]] inline void Store8(float* p, V8 v) { std::memcpy(p, &v, sizeof(v)); }

// The sum of the 8 lanes, always in the same order.
[[gnu::always_inline]] inline float Sum8(V8 v) {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

// e^x for x <= 0: Cephes' expf (x = n ln 2 + r, |r| <= ln 2 / 2, e^r by a degree-5 polynomial:
// about 1 ulp), with x floored at -87 (e^-87 ~ 1.6e-38, the smallest normal float the 2^n step
// can build).
[[gnu::always_inline]] inline V8 ExpNonPositive(V8 x) {
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

// erf(x): Abramowitz and Stegun 7.1.26 (absolute error <= 1.5e-7), odd in x.
[[gnu::always_inline]] inline V8 Erf(V8 x) {
  const V8 z = x < 0 ? -x : x;
  const V8 t = 1.0f / (z * 0.3275911f + 1.0f);
  V8 p = Splat(1.061405429f);
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const V8 e = 1.0f - p * t * ExpNonPositive(-(z * z));
  return x < 0 ? -e : e;
}

}  // namespace moe

#endif  // MOE_MODELS_VECTOR_MATH_H_
