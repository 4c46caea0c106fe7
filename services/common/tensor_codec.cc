#include "services/common/tensor_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace moe {
namespace {

// Our wire format is little-endian, as is every host we build for.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "big-endian hosts need byte swaps");

int ElementSize(moe::v1::DType d) {
  switch (d) {
    case moe::v1::DTYPE_FLOAT32:
      return 4;
    case moe::v1::DTYPE_FLOAT16:
      return 2;
    case moe::v1::DTYPE_BFLOAT16:
      return 2;
    case moe::v1::DTYPE_INT32:
      return 4;
    case moe::v1::DTYPE_INT64:
      return 8;
    default:
      return 0;
  }
}

torch::ScalarType TorchType(moe::v1::DType d) {
  switch (d) {
    case moe::v1::DTYPE_FLOAT16:
      return torch::kHalf;
    case moe::v1::DTYPE_BFLOAT16:
      return torch::kBFloat16;
    case moe::v1::DTYPE_INT32:
      return torch::kInt;
    case moe::v1::DTYPE_INT64:
      return torch::kLong;
    default:
      return torch::kFloat;
  }
}

}  // namespace

void EncodeTensor(const torch::Tensor& t, moe::v1::Tensor* out, moe::v1::DType wire) {
  torch::Tensor c;
  if (t.is_floating_point()) {
    c = t.to(torch::kCPU, TorchType(wire)).contiguous();
    out->set_dtype(wire);
  } else {
    c = t.to(torch::kCPU, torch::kLong).contiguous();
    out->set_dtype(moe::v1::DTYPE_INT64);
  }
  out->clear_shape();
  for (int64_t d : c.sizes()) out->add_shape(d);
  out->set_data(c.data_ptr(), c.numel() * c.element_size());
}

absl::StatusOr<torch::Tensor> DecodeTensor(const moe::v1::Tensor& t, const std::string& field,
                                           const TensorSpec& spec) {
  const int size = ElementSize(t.dtype());
  if (size == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".dtype: unsupported (", moe::v1::DType_Name(t.dtype()), ")"));
  }
  std::vector<int64_t> shape(t.shape().begin(), t.shape().end());
  for (int64_t d : shape) {
    if (d < 0 || d > (int64_t{1} << 32)) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".shape: bad dimension ", d, " in [",
                                                     absl::StrJoin(shape, ", "), "]"));
    }
  }
  // Multiplied with overflow checks: a few dimensions of 2^32 exceed int64. The nonzero
  // dimensions count even beside a zero one: LibTorch multiplies them all when it sizes the
  // storage (found by fuzzing, as was the overflow itself).
  int64_t nonzero = 1, nonzero_bytes = 0;
  bool overflow = false, empty = false;
  for (int64_t d : shape) {
    if (d == 0) {
      empty = true;
    } else {
      overflow |= __builtin_mul_overflow(nonzero, d, &nonzero);
    }
  }
  overflow |= __builtin_mul_overflow(nonzero, int64_t{size}, &nonzero_bytes);
  const int64_t numel = empty ? 0 : nonzero;
  const int64_t bytes = empty ? 0 : nonzero_bytes;
  if (overflow || static_cast<int64_t>(t.data().size()) != bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".data: ", t.data().size(), " bytes, but dtype x shape [",
                     absl::StrJoin(shape, ", "), "] ", overflow ? "overflows 64 bits" : "needs ",
                     overflow ? "" : absl::StrCat(bytes)));
  }

  if (!spec.shape.empty()) {
    bool match = spec.shape.size() == shape.size();
    for (size_t i = 0; match && i < shape.size(); ++i) {
      match = spec.shape[i] < 0 || spec.shape[i] == shape[i];
    }
    if (!match) {
      std::vector<std::string> want;
      for (int64_t d : spec.shape) want.push_back(d < 0 ? "*" : absl::StrCat(d));
      return absl::InvalidArgumentError(absl::StrCat(field, ".shape: expected [",
                                                     absl::StrJoin(want, ", "), "], got [",
                                                     absl::StrJoin(shape, ", "), "]"));
    }
  }
  torch::Tensor raw = torch::empty(shape, TorchType(t.dtype()));
  if (numel > 0) std::memcpy(raw.data_ptr(), t.data().data(), t.data().size());
  torch::Tensor out = raw.is_floating_point() ? raw.to(torch::kFloat) : raw.to(torch::kLong);
  if (spec.require_finite && out.is_floating_point()) {
    // A plain loop: for the small tensors of one decode step, three torch ops cost more.
    const float* p = out.data_ptr<float>();
    for (int64_t i = 0; i < numel; ++i) {
      if (!std::isfinite(p[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".data: contains NaN or Inf (element ", i, ")"));
      }
    }
  }
  return out;
}

}  // namespace moe
