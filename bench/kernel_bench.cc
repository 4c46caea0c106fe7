// Decode's hand-written kernels (docs/ARCHITECTURE.md, "Decode's own kernels") against the
// LibTorch formulations they replaced, on one core with hot caches: matrix products at the model's
// shapes, attention over the KV cache, the experts' GELU. Prints one JSON object per measurement.
//   kernel_bench --repeats=5
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "models/decode_attention.h"
#include "models/gelu.h"
#include "models/packed_matmul.h"
#include "models/threads.h"

ABSL_FLAG(int, repeats, 5, "timed rounds per measurement (the best is reported)");
ABSL_FLAG(int, d_model, 192, "model width (the shipped model's)");
ABSL_FLAG(int, heads, 6, "attention heads");
ABSL_FLAG(int, vocab, 4096, "vocabulary (the LM head's width)");
ABSL_FLAG(int, d_expert, 384, "expert width");

namespace {

// Best over rounds of the mean time of one call, in microseconds.
double Time(const std::function<void()>& f) {
  for (int i = 0; i < 20; ++i) f();  // warm caches and allocators
  double best = 1e30;
  for (int r = 0; r < absl::GetFlag(FLAGS_repeats); ++r) {
    const int calls = 200;
    const absl::Time start = absl::Now();
    for (int i = 0; i < calls; ++i) f();
    best = std::min(best, absl::ToDoubleMicroseconds(absl::Now() - start) / calls);
  }
  return best;
}

void MatrixProducts() {
  const int c = absl::GetFlag(FLAGS_d_model), e = absl::GetFlag(FLAGS_d_expert);
  struct Shape {
    const char* name;
    int k, n;
  };
  const std::vector<Shape> shapes = {{"qkv", c, 3 * c},
                                     {"proj", c, c},
                                     {"lm_head", c, absl::GetFlag(FLAGS_vocab)},
                                     {"expert_w1", c, e},
                                     {"expert_w2", e, c}};
  for (const Shape& s : shapes) {
    const torch::Tensor w = torch::randn({s.k, s.n});  // x @ w, contiguous, as before
    const moe::PackedMatrix packed(w.data_ptr<float>(), s.k, s.n);
    for (int rows : {1, 4, 8, 16, 32}) {
      const torch::Tensor x = torch::randn({rows, s.k});
      torch::Tensor out = torch::empty({rows, s.n});
      const double ours = Time(
          [&] { packed.Multiply(x.data_ptr<float>(), rows, s.k, out.data_ptr<float>(), s.n); });
      const double torch_us = Time([&] { out = torch::matmul(x, w); });
      const double gflops = 2.0 * rows * s.k * s.n / ours / 1e3;
      std::printf(
          "{\"kernel\": \"matmul\", \"shape\": \"%s\", \"k\": %d, \"n\": %d, \"rows\": %d, "
          "\"packed_us\": %.2f, \"libtorch_us\": %.2f, \"speedup\": %.2f, \"packed_gflops\": "
          "%.1f}\n",
          s.name, s.k, s.n, rows, ours, torch_us, torch_us / ours, gflops);
    }
  }
}

void Attention() {
  const int64_t c = absl::GetFlag(FLAGS_d_model), h = absl::GetFlag(FLAGS_heads), d = c / h;
  const int64_t b = 16, context = 256;
  // The cache in both layouts: keys [B, H, D, context] for ours, [B, H, context, D] for
  // LibTorch's ops (as the decode step ran before).
  const torch::Tensor keys = torch::randn({b, h, context, d});
  const torch::Tensor keys_t = keys.transpose(2, 3).contiguous();
  const torch::Tensor values = torch::randn({b, h, context, d});
  const torch::Tensor q = torch::randn({b, h * d});
  for (int64_t len : {32, 110, 250}) {
    const std::vector<int64_t> lens(b, len);
    torch::Tensor y = torch::empty({b, h * d});
    moe::DecodeAttentionArgs args{q.data_ptr<float>(),
                                  h * d,
                                  keys_t.data_ptr<float>(),
                                  values.data_ptr<float>(),
                                  h * d * context,
                                  d * context,
                                  context,
                                  lens.data(),
                                  b,
                                  h,
                                  d,
                                  1.0f / std::sqrt(static_cast<float>(d)),
                                  y.data_ptr<float>()};
    const double ours = Time([&] { moe::DecodeAttention(args); });
    const torch::Tensor k = keys.narrow(2, 0, len), v = values.narrow(2, 0, len);
    const torch::Tensor qv = q.view({b, h, 1, d});
    const double torch_us = Time([&] {
      torch::Tensor att = torch::softmax(
          torch::matmul(qv, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(d))), -1);
      y = (att.transpose(-1, -2) * v).sum(-2).view({b, h * d});
    });
    std::printf(
        "{\"kernel\": \"attention\", \"sequences\": %ld, \"heads\": %ld, \"positions\": %ld, "
        "\"ours_us\": %.2f, \"libtorch_us\": %.2f, \"speedup\": %.2f}\n",
        static_cast<long>(b), static_cast<long>(h), static_cast<long>(len), ours, torch_us,
        torch_us / ours);
  }
}

void Gelu() {
  const int e = absl::GetFlag(FLAGS_d_expert);
  for (int rows : {4, 32}) {
    const torch::Tensor x = torch::randn({rows, e});
    torch::Tensor work = x.clone();
    const double ours = Time([&] {
      work.copy_(x);
      moe::GeluInPlace(work.data_ptr<float>(), work.numel());
    });
    const double torch_us = Time([&] {
      work.copy_(x);
      work = torch::gelu(work);
    });
    std::printf(
        "{\"kernel\": \"gelu\", \"rows\": %d, \"width\": %d, \"ours_us\": %.2f, "
        "\"libtorch_us\": %.2f, \"speedup\": %.2f}\n",
        rows, e, ours, torch_us, torch_us / ours);
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  moe::SetIntraOpThreads(1);
  c10::InferenceMode guard;
  torch::manual_seed(1);
  std::printf("{\"simd\": \"%s\"}\n", moe::SimdLevelName(moe::BestSimdLevel()));
  MatrixProducts();
  Attention();
  Gelu();
  return 0;
}
