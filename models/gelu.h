// The experts' activation, exact (erf) GELU, on a float buffer in place: x * (1 + erf(x / √2)) / 2.
// LibTorch's gelu went through oneDNN and built a primitive on every call, which cost an expert
// pool ~10% as much as the expert's two matrix products. Torch-free.
#ifndef MOE_MODELS_GELU_H_
#define MOE_MODELS_GELU_H_

#include <cstdint>

#include "models/simd.h"

namespace moe {

// `level` other than this CPU's best is for tests (one the CPU lacks runs the baseline).
void GeluInPlace(float* x, int64_t n, SimdLevel level = BestSimdLevel());

}  // namespace moe

#endif  // MOE_MODELS_GELU_H_
