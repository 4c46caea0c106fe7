// PackedMatrix (packed_matmul.h, torch-free) on LibTorch tensors.
#ifndef MOE_MODELS_PACKED_TENSOR_H_
#define MOE_MODELS_PACKED_TENSOR_H_

#include <torch/torch.h>

#include "models/packed_matmul.h"

namespace moe {

// x [rows, k] @ m (+ its bias) -> [rows, n] float, on a contiguous float copy of x if x is not
// one already. REQUIRES: x on the CPU.
inline torch::Tensor Multiply(const PackedMatrix& m, const torch::Tensor& x) {
  const torch::Tensor in = x.to(torch::kFloat).contiguous();
  const int64_t rows = in.size(0);
  torch::Tensor out = torch::empty({rows, m.n()}, torch::kFloat);
  m.Multiply(in.data_ptr<float>(), rows, m.k(), out.data_ptr<float>(), m.n());
  return out;
}

}  // namespace moe

#endif  // MOE_MODELS_PACKED_TENSOR_H_
