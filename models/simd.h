// Which vector instruction set this CPU runs. The few hand-written kernels of the model
// (packed_matmul.h, decode_attention.h) are compiled for each level and pick one at run time,
// the same one everywhere on a machine.
#ifndef MOE_MODELS_SIMD_H_
#define MOE_MODELS_SIMD_H_

namespace moe {

enum class SimdLevel { kBaseline, kAvx2, kAvx512 };  // kAvx2 includes FMA

inline bool CpuSupports(SimdLevel level) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  switch (level) {
    case SimdLevel::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
    case SimdLevel::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case SimdLevel::kBaseline:
      return true;
  }
  return false;
#else
  return level == SimdLevel::kBaseline;
#endif
}

// `level` if this CPU runs it, else the baseline: what a kernel asked for `level` runs.
inline SimdLevel UsableSimdLevel(SimdLevel level) {
  return CpuSupports(level) ? level : SimdLevel::kBaseline;
}

inline SimdLevel BestSimdLevel() {
  return CpuSupports(SimdLevel::kAvx512) ? SimdLevel::kAvx512
         : CpuSupports(SimdLevel::kAvx2) ? SimdLevel::kAvx2
                                         : SimdLevel::kBaseline;
}

inline const char* SimdLevelName(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512:
      return "avx512";
    case SimdLevel::kAvx2:
      return "avx2";
    case SimdLevel::kBaseline:
      return "baseline";
  }
  return "unknown";
}

}  // namespace moe

// On a function: compile it for that level (x86-64 only; elsewhere every level is the baseline).
#if defined(__x86_64__)
#define MOE_TARGET_AVX512 __attribute__((target("arch=x86-64-v4")))
#define MOE_TARGET_AVX2 __attribute__((target("arch=x86-64-v3")))
#else
#define MOE_TARGET_AVX512
#define MOE_TARGET_AVX2
#endif

#endif  // MOE_MODELS_SIMD_H_
