#include "models/decode_attention.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "models/vector_math.h"

namespace moe {
namespace {

// p[l] = sum over c of q[c] * keys[c][l], for l in [l0, l0 + 8 * B): B vectors of positions in
// registers while c runs over the head's dimensions (keys are stored [D, context] per head).
template <int B>
[[gnu::always_inline]] inline void Scores(const float* __restrict q, const float* __restrict keys,
                                          int64_t key_stride, int64_t d, int64_t l0,
                                          float* __restrict p) {
  V8 acc[B];
  for (int j = 0; j < B; ++j) acc[j] = V8{};
  for (int64_t c = 0; c < d; ++c) {
    const float qc = q[c];
    const float* row = keys + c * key_stride + l0;
    for (int j = 0; j < B; ++j) acc[j] += qc * Load8(row + 8 * j);
  }
  for (int j = 0; j < B; ++j) Store8(p + l0 + 8 * j, acc[j]);
}

// Scores<vectors> for 1 <= vectors <= B.
template <int B>
[[gnu::always_inline]] inline void ScoresUpTo(int64_t vectors, const float* q, const float* keys,
                                              int64_t key_stride, int64_t d, int64_t l0, float* p) {
  if (vectors == B) return Scores<B>(q, keys, key_stride, d, l0, p);
  if constexpr (B > 1) ScoresUpTo<B - 1>(vectors, q, keys, key_stride, d, l0, p);
}

// y[c] += sum over l in [0, n) of p[l] * values[l][c] for c in [c0, c0 + 8 * B), two positions
// at a time in separate sums (added at the end) so the additions need not wait for each other.
template <int B>
[[gnu::always_inline]] inline void Weighted(const float* __restrict p,
                                            const float* __restrict values, int64_t n, int64_t d,
                                            int64_t c0, float* __restrict y) {
  V8 even[B], odd[B];
  for (int j = 0; j < B; ++j) even[j] = odd[j] = V8{};
  int64_t l = 0;
  for (; l + 2 <= n; l += 2) {
    const float* v0 = values + l * d + c0;
    const float* v1 = v0 + d;
    for (int j = 0; j < B; ++j) {
      even[j] += p[l] * Load8(v0 + 8 * j);
      odd[j] += p[l + 1] * Load8(v1 + 8 * j);
    }
  }
  if (l < n) {
    const float* v0 = values + l * d + c0;
    for (int j = 0; j < B; ++j) even[j] += p[l] * Load8(v0 + 8 * j);
  }
  for (int j = 0; j < B; ++j) Store8(y + c0 + 8 * j, even[j] + odd[j]);
}

[[gnu::always_inline]] inline void Attend(const DecodeAttentionArgs& a, float* __restrict p) {
  for (int64_t i = 0; i < a.b; ++i) {
    const int64_t n = a.len[i];
    for (int64_t j = 0; j < a.h; ++j) {
      const float* q = a.q + i * a.q_stride + j * a.d;
      const float* keys = a.keys + i * a.seq_stride + j * a.head_stride;
      const float* values = a.values + i * a.seq_stride + j * a.head_stride;
      float* __restrict y = a.out + (i * a.h + j) * a.d;
      // Scores: up to 8 vectors of positions at a time while they fit in the cache's row (those
      // past n are computed and never read), then one by one.
      int64_t l = 0;
      while (l < n) {
        const int64_t vectors = std::min<int64_t>({8, (n - l + 7) / 8, (a.key_stride - l) / 8});
        if (vectors <= 0) break;
        ScoresUpTo<8>(vectors, q, keys, a.key_stride, a.d, l, p);
        l += 8 * vectors;
      }
      for (; l < n; ++l) {
        float s = 0;
        for (int64_t c = 0; c < a.d; ++c) s += q[c] * keys[c * a.key_stride + l];
        p[l] = s;
      }
      // Softmax numerators over whole vectors (p has room for the last one): the positions
      // past n enter as -inf to the maximum and leave as 0 to the sum.
      const int64_t rounded = (n + 7) / 8 * 8;
      for (int64_t t = n; t < rounded; ++t) p[t] = -std::numeric_limits<float>::infinity();
      V8 vmax = Splat(-std::numeric_limits<float>::infinity());
      for (int64_t t = 0; t < rounded; t += 8) {
        const V8 v = Load8(p + t) * a.scale;
        Store8(p + t, v);
        vmax = v > vmax ? v : vmax;
      }
      float max = vmax[0];
      for (int k = 1; k < 8; ++k) max = std::max(max, vmax[k]);
      V8 vsum{};
      for (int64_t t = 0; t < rounded; t += 8) {
        V8 v = ExpNonPositive(Load8(p + t) - max);
        if (t + 8 > n) {
          for (int k = static_cast<int>(n - t); k < 8; ++k) v[k] = 0;
        }
        Store8(p + t, v);
        vsum += v;
      }
      const float sum = Sum8(vsum);
      int64_t c = 0;
      for (; c + 32 <= a.d; c += 32) Weighted<4>(p, values, n, a.d, c, y);
      for (; c + 8 <= a.d; c += 8) Weighted<1>(p, values, n, a.d, c, y);
      for (; c < a.d; ++c) {
        float s = 0;
        for (int64_t t = 0; t < n; ++t) s += p[t] * values[t * a.d + c];
        y[c] = s;
      }
      const float inv = 1.0f / sum;
      for (int64_t t = 0; t < a.d; ++t) y[t] *= inv;
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
  // Scores of whole vectors may run past a sequence's last position (not past the cache's row).
  std::vector<float> scratch((longest + 63) / 8 * 8 + 64);
  switch (UsableSimdLevel(level)) {
    case SimdLevel::kAvx512:
      return AttendAvx512(args, scratch.data());
    case SimdLevel::kAvx2:
      return AttendAvx2(args, scratch.data());
    case SimdLevel::kBaseline:
      return AttendBaseline(args, scratch.data());
  }
}

}  // namespace moe
