// LibTorch's intra-op thread count, process-wide and per thread. Torch-free header.
//
// Debian's LibTorch parallelizes with OpenMP, whose thread count is a per-thread setting: a thread
// the process starts itself (an engine thread, gRPC's callback threads) begins with OpenMP's
// default, one thread per core, not with what SetIntraOpThreads chose. LibTorch applies its count
// to a thread lazily, when an op first asks for it, but the oneDNN kernels it calls for some ops
// (gelu) read OpenMP's value directly: on a gRPC callback thread of an expert pool, every gelu
// forked a team of two threads. Code that runs tensor ops on threads it does not own therefore
// calls UseIntraOpThreadsOnThisThread() first.
#ifndef MOE_MODELS_THREADS_H_
#define MOE_MODELS_THREADS_H_

namespace moe {

// Sets the intra-op thread count of LibTorch (and of OpenBLAS's own pool, when OpenBLAS is the
// BLAS in use) for the process, and applies it to the calling thread. `threads` <= 0: no change.
void SetIntraOpThreads(int threads);

// Applies the process's intra-op thread count to the calling thread. Cheap after the first call
// on a thread; call it at the top of anything that runs tensor ops off the main thread.
void UseIntraOpThreadsOnThisThread();

// The intra-op thread count OpenMP gives parallel regions started on the calling thread now.
int IntraOpThreadsOnThisThread();

}  // namespace moe

#endif  // MOE_MODELS_THREADS_H_
