#include "models/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

namespace moe {

void SetIntraOpThreads(int threads) {
  if (threads <= 0) return;
  at::set_num_threads(threads);
  // LibTorch calls whichever libblas.so.3 is installed; OpenBLAS keeps its own pool (one thread
  // per core, spin-waiting) that set_num_threads does not reach. Several processes sharing a few
  // cores then fight over them, so size that pool too when OpenBLAS is the BLAS in use.
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    f(threads);
  }
}

void UseIntraOpThreadsOnThisThread() {
  thread_local bool applied = false;
  if (applied) return;
  // Re-applies the count set_num_threads recorded for the process to this thread's OpenMP state.
  at::init_num_threads();
  applied = true;
}

int IntraOpThreadsOnThisThread() {
  // OpenMP's own per-thread value, which is what oneDNN's kernels read; at::get_num_threads()
  // would first apply the process's count to this thread and so hide a thread that lacks it.
  using MaxThreads = int (*)();
  if (auto f = reinterpret_cast<MaxThreads>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"))) {
    return f();
  }
  return at::get_num_threads();
}

}  // namespace moe
