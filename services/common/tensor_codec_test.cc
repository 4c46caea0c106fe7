#include "services/common/tensor_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

namespace moe {
namespace {

using ::testing::HasSubstr;

TEST(TensorCodecTest, Float32RoundTripIsBitExact) {
  torch::manual_seed(0);
  torch::Tensor t = torch::randn({3, 5});
  moe::v1::Tensor wire;
  EncodeTensor(t, &wire);
  EXPECT_EQ(wire.data().size(), 60u);
  EXPECT_EQ(wire.dtype(), moe::v1::DTYPE_FLOAT32);
  absl::StatusOr<torch::Tensor> back = DecodeTensor(wire, "x", {{3, 5}});
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(torch::equal(*back, t));
}

TEST(TensorCodecTest, HalfPrecisionOnTheWireIsClose) {
  torch::Tensor t = torch::linspace(-2, 2, 17).view({1, 17});
  for (auto dtype : {moe::v1::DTYPE_FLOAT16, moe::v1::DTYPE_BFLOAT16}) {
    moe::v1::Tensor wire;
    EncodeTensor(t, &wire, dtype);
    EXPECT_EQ(wire.data().size(), 34u);
    absl::StatusOr<torch::Tensor> back = DecodeTensor(wire, "x", {});
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::allclose(*back, t, 1e-2, 1e-2));
  }
}

TEST(TensorCodecTest, ByteCountMismatchNamesTheField) {
  moe::v1::Tensor wire;
  EncodeTensor(torch::ones({2, 4}), &wire);
  wire.mutable_data()->pop_back();
  EXPECT_THAT(DecodeTensor(wire, "hidden", {}).status().message(),
              HasSubstr("hidden.data: 31 bytes, but dtype x shape [2, 4] needs 32"));
}

TEST(TensorCodecTest, ShapeDtypeAndValuesAreChecked) {
  moe::v1::Tensor wire;
  EncodeTensor(torch::ones({2, 4}), &wire);
  EXPECT_THAT(DecodeTensor(wire, "hidden", {{-1, 8}}).status().message(),
              HasSubstr("hidden.shape: expected [*, 8], got [2, 4]"));
  moe::v1::Tensor unknown = wire;
  unknown.set_dtype(moe::v1::DTYPE_UNSPECIFIED);
  EXPECT_THAT(DecodeTensor(unknown, "hidden", {}).status().message(), HasSubstr("hidden.dtype"));
  moe::v1::Tensor negative = wire;
  negative.set_shape(0, -2);
  EXPECT_THAT(DecodeTensor(negative, "hidden", {}).status().message(), HasSubstr("hidden.shape"));
  moe::v1::Tensor nan;
  EncodeTensor(torch::full({1, 2}, std::nanf("")), &nan);
  EXPECT_THAT(DecodeTensor(nan, "hidden", {}).status().message(), HasSubstr("NaN or Inf"));
  moe::v1::Tensor inf;
  EncodeTensor(torch::full({1, 2}, INFINITY), &inf);
  EXPECT_FALSE(DecodeTensor(inf, "hidden", {}).ok());
}

// Found by fuzzing (tests/fuzz/corpus/tensor_codec/crash-overflowing-shape): three dimensions of
// 2^32 overflowed the element count to 0, so an empty payload "matched" and torch was asked for
// 2^96 elements.
TEST(TensorCodecTest, ShapesWhoseElementCountOverflowsAreRefused) {
  moe::v1::Tensor wire;
  wire.set_dtype(moe::v1::DTYPE_FLOAT32);
  for (int i = 0; i < 3; ++i) wire.add_shape(int64_t{1} << 32);
  absl::StatusOr<torch::Tensor> got = DecodeTensor(wire, "hidden", {});
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(got.status().message(), HasSubstr("hidden.data: 0 bytes"));
  EXPECT_THAT(got.status().message(), HasSubstr("overflows 64 bits"));
  // A zero dimension empties the tensor, but LibTorch still multiplies the others.
  wire.add_shape(0);
  got = DecodeTensor(wire, "hidden", {});
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.status().message(), HasSubstr("overflows 64 bits"));
}

TEST(TensorCodecTest, EmptyTensorsDecode) {
  moe::v1::Tensor wire;
  EncodeTensor(torch::zeros({0, 4}), &wire);
  absl::StatusOr<torch::Tensor> back = DecodeTensor(wire, "x", {{-1, 4}});
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->size(0), 0);
}

}  // namespace
}  // namespace moe
