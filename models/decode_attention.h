// One decode step's attention, read straight from the KV cache: for each sequence b and head h,
// y = softmax(q . k_l * scale over l < len[b]) . v_l.
//
// LibTorch spent ~25% of the orchestrator's CPU here at 32 streams (a [B, H, L, D] product
// materialised and summed, batched 1-row GEMMs for the scores, a masked softmax): about as much
// as every projection of the layer. These loops touch each key and value once and never look at
// positions a sequence does not attend to, so a sequence's result does not depend on the rest of
// the batch. Compiled for AVX-512, AVX2+FMA and baseline x86-64, picked at load time. Torch-free.
#ifndef MOE_MODELS_DECODE_ATTENTION_H_
#define MOE_MODELS_DECODE_ATTENTION_H_

#include <cstdint>

#include "models/simd.h"

namespace moe {

struct DecodeAttentionArgs {
  const float* q;  // [b, h * d]: row i at q + i * q_stride, head j at + j * d
  int64_t q_stride;
  // Sequence i, head j: dimension c of position l at keys + i * seq_stride + j * head_stride +
  // c * key_stride + l (keys transposed: [d, key_stride] per head, so the scores of consecutive
  // positions are one vector), and at values + i * seq_stride + j * head_stride + l * d + c
  // ([positions, d] per head).
  const float* keys;
  const float* values;
  int64_t seq_stride, head_stride, key_stride;
  const int64_t* len;  // [b]: positions each sequence attends to, >= 1
  int64_t b, h, d;
  float scale;  // applied to q . k
  float* out;   // [b, h * d], contiguous
};

// `level` other than this CPU's best is for tests (one the CPU lacks runs the baseline).
void DecodeAttention(const DecodeAttentionArgs& args, SimdLevel level = BestSimdLevel());

}  // namespace moe

#endif  // MOE_MODELS_DECODE_ATTENTION_H_
