// Layer normalization of decode's few rows, by hand: each row of c floats becomes
// (x - mean) / sqrt(var + eps) * weight + bias, with the biased variance of torch.nn.LayerNorm.
// A decode step normalizes 2 * layers + 1 times; LibTorch's op costs more to dispatch than to
// compute at these sizes. Torch-free.
#ifndef MOE_MODELS_LAYER_NORM_H_
#define MOE_MODELS_LAYER_NORM_H_

#include <cstdint>

#include "models/simd.h"

namespace moe {

// x and out: rows x c, contiguous (they may be the same buffer); weight, bias: c.
// `level` other than this CPU's best is for tests (one the CPU lacks runs the baseline).
void LayerNormRows(const float* x, int64_t rows, int64_t c, const float* weight, const float* bias,
                   float eps, float* out, SimdLevel level = BestSimdLevel());

}  // namespace moe

#endif  // MOE_MODELS_LAYER_NORM_H_
