// The tensor codec on outside bytes: a whole moe.v1.Tensor message, or one built field by field
// (any dtype number, any dims, any payload). A decode either succeeds with exactly the shape and
// element count the message claims, finite where required, or fails INVALID_ARGUMENT naming the
// field.
#include <cmath>

#include "absl/strings/match.h"
#include "moe/v1/tensor.pb.h"
#include "services/common/tensor_codec.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moe::fuzz::ByteReader in(data, size);
  moe::v1::Tensor t;
  const uint8_t mode = in.Byte();
  if (mode & 1) {
    if (!t.ParseFromString(in.Rest())) return 0;
  } else {
    t.set_dtype(static_cast<moe::v1::DType>(in.Byte() % 12));
    const int dims = in.Byte() % 5;
    for (int i = 0; i < dims; ++i) {
      // Mostly small sizes, sometimes any 64-bit value (negative, huge, overflowing products).
      const uint8_t kind = in.Byte();
      t.add_shape(kind < 200 ? kind % 9 : in.Take<int64_t>());
    }
    t.set_data(in.Rest());
  }
  moe::TensorSpec spec;
  switch (mode >> 1 & 3) {
    case 0:
      spec.shape = {-1, -1};
      break;
    case 1:
      spec.shape = {2, 3};
      break;
    case 2:
      spec.shape = {-1};
      spec.require_finite = false;
      break;
    default:
      spec.shape = {};
      break;
  }
  absl::StatusOr<torch::Tensor> got = moe::DecodeTensor(t, "x.y", spec);
  if (!got.ok()) {
    FUZZ_CHECK(got.status().code() == absl::StatusCode::kInvalidArgument, got.status().ToString());
    FUZZ_CHECK(absl::StrContains(got.status().message(), "x.y"), got.status().ToString());
    return 0;
  }
  FUZZ_CHECK(got->dim() == t.shape_size(), "rank differs from the message's");
  FUZZ_CHECK(spec.shape.empty() || got->dim() == static_cast<int64_t>(spec.shape.size()),
             "rank differs from the spec");
  for (int i = 0; i < t.shape_size(); ++i) {
    FUZZ_CHECK(got->size(i) == t.shape(i), "a dimension differs from the message's");
    FUZZ_CHECK(spec.shape.empty() || spec.shape[i] < 0 || spec.shape[i] == t.shape(i),
               "a dimension breaks the spec");
  }
  FUZZ_CHECK(got->scalar_type() == torch::kFloat || got->scalar_type() == torch::kLong,
             "decoded dtype is neither float32 nor int64");
  if (spec.require_finite && got->scalar_type() == torch::kFloat && got->numel() > 0) {
    FUZZ_CHECK(got->isfinite().all().item<bool>(), "a non-finite value passed require_finite");
  }
  return 0;
}
