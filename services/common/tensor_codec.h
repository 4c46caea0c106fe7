// torch::Tensor <-> moe.v1.Tensor: raw little-endian bytes, dtype and shape. The one codec.
#ifndef MOE_SERVICES_COMMON_TENSOR_CODEC_H_
#define MOE_SERVICES_COMMON_TENSOR_CODEC_H_

#include <torch/torch.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "moe/v1/tensor.pb.h"

namespace moe {

// Writes a CPU copy of t (float32 unless `wire` says float16/bfloat16 for floating tensors).
void EncodeTensor(const torch::Tensor& t, moe::v1::Tensor* out,
                  moe::v1::DType wire = moe::v1::DTYPE_FLOAT32);

// What a decoded tensor must look like; the error names `field`.
struct TensorSpec {
  std::vector<int64_t> shape;  // -1 = any size in that dimension; empty = any shape at all
  bool require_finite = true;  // refuse NaN / Inf
};

// Decodes into a float32 (from any floating dtype) or int64 (from integer dtypes) CPU tensor.
// INVALID_ARGUMENT names the field for: unknown dtype, negative dims, byte count not equal to
// dtype size x elements, shape mismatch, non-finite values.
absl::StatusOr<torch::Tensor> DecodeTensor(const moe::v1::Tensor& t, const std::string& field,
                                           const TensorSpec& spec);

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_TENSOR_CODEC_H_
