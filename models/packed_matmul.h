// y = x @ w (+ bias) for the few rows of a decode step, with w packed once.
//
// A BLAS GEMM packs both operands into panels on every call. For the 1-32 rows of a decode step
// that packing of the weight matrix costs more than the multiply itself (OpenBLAS's sgemm_itcopy
// was the orchestrator's hottest function at 32 streams, bench/RESULTS.md). A PackedMatrix keeps
// the weight in the kernel's panel layout from load time on, so a call only streams it.
//
// Every output element is one sequential sum over k, so a row's result does not depend on how
// many other rows share the call (batch-invariant), on any machine: the embedded engine and the
// cluster's services, whatever their batches, compute the same bits. The kernel is compiled for
// AVX-512, AVX2+FMA and baseline x86-64 and picked at load time (the same everywhere on one
// machine). CPU only; torch-free, so any file can include it.
#ifndef MOE_MODELS_PACKED_MATMUL_H_
#define MOE_MODELS_PACKED_MATMUL_H_

#include <cstdint>
#include <memory>

#include "models/simd.h"

namespace moe {

class PackedMatrix {
 public:
  // w: [k, n] row-major (x @ w); bias: [n] or null. `level` other than this CPU's best is for
  // tests (one the CPU lacks runs the baseline).
  PackedMatrix(const float* w, int64_t k, int64_t n, const float* bias = nullptr,
               SimdLevel level = BestSimdLevel());

  int64_t k() const { return k_; }
  int64_t n() const { return n_; }

  // out[i, :] = x[i, :] @ w + bias for i < m. Row i of x starts at x + i * x_stride, row i of out
  // at out + i * out_stride. REQUIRES: x_stride >= k, out_stride >= n, out does not overlap x.
  void Multiply(const float* x, int64_t m, int64_t x_stride, float* out, int64_t out_stride) const;

  // Columns per panel: the panel of columns [16p, 16p + 16) is stored [k][16], contiguous.
  static constexpr int kPanel = 16;

 private:
  struct Free {
    void operator()(float* p) const;
  };
  int64_t k_, n_, panels_;
  SimdLevel level_;
  std::unique_ptr<float[], Free> data_;  // [panels_][k_][kPanel], zero-padded, 64-byte aligned
  std::unique_ptr<float[], Free> bias_;  // [panels_ * kPanel], zero-padded; null without bias
};

}  // namespace moe

#endif  // MOE_MODELS_PACKED_MATMUL_H_
