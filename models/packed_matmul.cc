#include "models/packed_matmul.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace moe {
namespace {

constexpr int kPanel = PackedMatrix::kPanel;

// Native vectors: a panel's row of 16 floats is one of V512, two of V256 or four of V128. (A
// 64-byte generic vector in an AVX2 function is split badly by the compilers: 20x slower.)
typedef float V512 __attribute__((vector_size(64)));
typedef float V256 __attribute__((vector_size(32)));
typedef float V128 __attribute__((vector_size(16)));

struct Args {
  const float* x;
  int64_t m, x_stride;
  const float* w;  // packed panels
  int64_t k, n, panels;
  const float* bias;  // padded, or null
  float* out;
  int64_t out_stride;
};

// R rows x P panels of out: R * P * 16 sums, each over k in order (x[r][i] * w[i][c] fused into
// the running sum), then + bias. `w` is the first panel, `cols` the columns left from it.
template <typename V, int R, int P>
[[gnu::always_inline]] inline void Tile(const Args& a, const float* x, const float* w,
                                        const float* bias, float* out, int64_t cols) {
  constexpr int kLanes = sizeof(V) / sizeof(float);
  constexpr int S = kPanel / kLanes;  // vectors per panel row
  V acc[R][P * S];
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < P * S; ++j) acc[r][j] = V{};
  }
  const int64_t panel_floats = a.k * kPanel;
  for (int64_t i = 0; i < a.k; ++i) {
    V wv[P * S];
    for (int p = 0; p < P; ++p) {
      for (int s = 0; s < S; ++s) {
        std::memcpy(&wv[p * S + s], w + p * panel_floats + i * kPanel + s * kLanes, sizeof(V));
      }
    }
    for (int r = 0; r < R; ++r) {
      const float xv = x[r * a.x_stride + i];
      for (int j = 0; j < P * S; ++j) acc[r][j] += xv * wv[j];
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < P * S; ++j) {
      V v = acc[r][j];
      if (bias != nullptr) {
        V b;
        std::memcpy(&b, bias + j * kLanes, sizeof(V));
        v += b;
      }
      const int64_t c = std::min<int64_t>(cols - j * kLanes, kLanes);
      if (c > 0) std::memcpy(out + r * a.out_stride + j * kLanes, &v, c * sizeof(float));
    }
  }
}

// Tile<V, nr, np> for nr in [1, R] and np in {1, 2, 4, 8} (8 only below 4 rows: 32 sums would
// not fit in registers).
template <typename V, int R>
[[gnu::always_inline]] inline void TileOf(int64_t nr, int64_t np, const Args& a, const float* x,
                                          const float* w, const float* bias, float* out,
                                          int64_t cols) {
  if (nr == R) {
    if constexpr (R < 4) {
      if (np == 8) return Tile<V, R, 8>(a, x, w, bias, out, cols);
    }
    if (np == 4) return Tile<V, R, 4>(a, x, w, bias, out, cols);
    if (np == 2) return Tile<V, R, 2>(a, x, w, bias, out, cols);
    return Tile<V, R, 1>(a, x, w, bias, out, cols);
  }
  if constexpr (R > 1) TileOf<V, R - 1>(nr, np, a, x, w, bias, out, cols);
}

// Rows in blocks of up to 4. P panels at a time: kWide when the call has 4 rows or more, kNarrow
// (more panels, to keep enough independent sums in flight) when it has fewer. Panels are the
// outer loop, so a group of panels stays in cache while every row block reads it.
template <typename V, int kWide, int kNarrow>
[[gnu::always_inline]] inline void Run(const Args& a) {
  const int64_t group = a.m >= 4 ? kWide : kNarrow;
  const int64_t panel_floats = a.k * kPanel;
  for (int64_t p0 = 0; p0 < a.panels;) {
    int64_t np = std::min(group, a.panels - p0);
    // 8, 4, 2 or 1 panels: the largest that fits.
    np = np >= 8 ? 8 : np >= 4 ? 4 : np >= 2 ? 2 : 1;
    const float* w = a.w + p0 * panel_floats;
    const float* bias = a.bias == nullptr ? nullptr : a.bias + p0 * kPanel;
    const int64_t cols = a.n - p0 * kPanel;
    for (int64_t r0 = 0; r0 < a.m; r0 += 4) {
      const int64_t nr = std::min<int64_t>(4, a.m - r0);
      const float* x = a.x + r0 * a.x_stride;
      float* out = a.out + r0 * a.out_stride + p0 * kPanel;
      TileOf<V, 4>(nr, np, a, x, w, bias, out, cols);
    }
    p0 += np;
  }
}

// 32 zmm registers: 4 x 4 or 3 x 8 sums.
MOE_TARGET_AVX512 void RunAvx512(const Args& a) { Run<V512, 4, 8>(a); }
// 16 ymm registers, two per panel: 4 x 1 or 3 x 2 panels.
MOE_TARGET_AVX2 void RunAvx2(const Args& a) { Run<V256, 1, 2>(a); }
void RunBaseline(const Args& a) { Run<V128, 1, 1>(a); }

float* AllocateZeroed(int64_t floats) {
  const size_t bytes = ((static_cast<size_t>(floats) * sizeof(float) + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, std::max<size_t>(bytes, 64));
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  return static_cast<float*>(p);
}

}  // namespace

void PackedMatrix::Free::operator()(float* p) const { std::free(p); }

PackedMatrix::PackedMatrix(const float* w, int64_t k, int64_t n, const float* bias, SimdLevel level)
    : k_(k), n_(n), panels_((n + kPanel - 1) / kPanel), level_(UsableSimdLevel(level)) {
  data_.reset(AllocateZeroed(panels_ * k_ * kPanel));
  for (int64_t p = 0; p < panels_; ++p) {
    const int64_t c0 = p * kPanel, cols = std::min<int64_t>(kPanel, n_ - c0);
    float* panel = data_.get() + p * k_ * kPanel;
    for (int64_t i = 0; i < k_; ++i) {
      std::memcpy(panel + i * kPanel, w + i * n_ + c0, cols * sizeof(float));
    }
  }
  if (bias != nullptr) {
    bias_.reset(AllocateZeroed(panels_ * kPanel));
    std::memcpy(bias_.get(), bias, n_ * sizeof(float));
  }
}

void PackedMatrix::Multiply(const float* x, int64_t m, int64_t x_stride, float* out,
                            int64_t out_stride) const {
  if (m <= 0 || n_ == 0) return;
  const Args args{x, m, x_stride, data_.get(), k_, n_, panels_, bias_.get(), out, out_stride};
  switch (level_) {
    case SimdLevel::kAvx512:
      return RunAvx512(args);
    case SimdLevel::kAvx2:
      return RunAvx2(args);
    case SimdLevel::kBaseline:
      return RunBaseline(args);
  }
}

}  // namespace moe
