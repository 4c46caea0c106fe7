// The generation engine: continuous batching over one KV cache. Requests join between decode
// steps (after a one-pass prompt prefill) and leave when done; every live sequence shares each
// decode step, whose MoE layers go to a MoeExecutor (in-process or remote).
//
// Thread-safe: Submit and Cancel from any thread. Steps run either on the engine's own thread
// (Start) or in the caller's (RunUntilIdle); callbacks run on whichever thread steps.
#ifndef MOE_MODELS_ENGINE_H_
#define MOE_MODELS_ENGINE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "models/config.h"
#include "models/sampler.h"

namespace moe {

class InferenceModel;
class KvCache;
class MoeExecutor;

// The routing of one token in one layer, as the engine reports it.
struct LayerRoute {
  int layer = 0;
  std::vector<int32_t> ids;  // flat micro-expert ids, highest weight first; no dropped
  std::vector<float> weights;
  std::vector<std::string> pools;         // per chosen expert; empty names when in-process
  std::vector<std::string> shared_pools;  // per shared expert
  std::vector<float> probs;               // [n_routed] when asked
  float latency_ms = 0;
};

struct TokenOutput {
  uint64_t request_id = 0;
  int position = 0;
  int token_id = 0;
  bool is_prompt = false;
  std::vector<LayerRoute> routing;  // one per layer
  TokenLogprobs logprobs;           // generated tokens, when sampling.logprobs >= 0 (see sampler.h)
  bool last = false;
  std::string finish_reason;  // on the last token: "length" or "stop"
};

struct GenerateParams {
  std::vector<int> prompt;  // REQUIRES: 1 <= size <= context_length
  int max_new_tokens = 64;  // REQUIRES: >= 1
  SamplingParams sampling;
  bool echo_prompt = false;  // report prompt tokens (with routing) before generated ones
  bool want_probs = false;
};

struct GenerateCallbacks {
  std::function<void(const TokenOutput&)> on_token;
  // Exactly once per request: OK after the last token, or the error (CANCELLED when cancelled).
  std::function<void(const absl::Status&)> on_done;
};

struct EngineOptions {
  int max_batch = 32;
  std::function<void(int batch_size)> on_decode_step;  // optional, for metrics
  // Request ids are first_id, first_id + id_stride, ...: engines side by side (EngineLanes)
  // hand out ids that never collide.
  uint64_t first_id = 1;
  uint64_t id_stride = 1;
  // Ping-pong micro-batches (MegaScale-Infer): a decode step's batch is split into up to
  // max_micro_batches contiguous parts of at least micro_batch_rows sequences each, and their
  // layers are interleaved on the stepping thread: while one part's MoE layer is under way on
  // the executor (MoeExecutor::Begin), the next part computes its attention. 1 = no split.
  int max_micro_batches = 1;
  int micro_batch_rows = 4;
  // EngineLanes: a new request goes to the first lane holding fewer than lane_rows sequences,
  // so a lane fills to lane_rows before the next one gets any; once every lane holds that many,
  // to the least loaded. 1 = always the least loaded. A second lane buys overlap, but splits
  // each step's rows and so doubles the messages per token; on few cores a small batch is
  // cheaper in one lane.
  int lane_rows = 1;
};

// How many micro-batches a step of `batch` sequences is split into under `options`.
int MicroBatches(const EngineOptions& options, int batch);

// Seeds of the routing noise: one per (sequence seed, position).
uint64_t TokenKey(uint64_t seed, int position);

class Engine {
 public:
  // REQUIRES: model and executor outlive the engine.
  Engine(const InferenceModel* model, MoeExecutor* executor, const EngineOptions& options);
  ~Engine();

  // Validates and enqueues; returns the request id or INVALID_ARGUMENT naming the field.
  absl::StatusOr<uint64_t> Submit(GenerateParams params, GenerateCallbacks callbacks);
  // Stops a request between steps; its on_done gets CANCELLED. Unknown ids are ignored.
  void Cancel(uint64_t request_id);

  // Runs steps on a background thread until Stop (which fails requests still queued or live
  // with CANCELLED only if `drain` is false; otherwise it waits for them).
  void Start();
  void Stop(bool drain);

  // Runs steps in the calling thread until no request is left. REQUIRES: not Started.
  void RunUntilIdle();

  int max_batch() const { return options_.max_batch; }
  // Sequences in the current batch (those being admitted included) plus those waiting.
  int load() const;

 private:
  struct Sequence;
  bool Step();  // one admission + decode round; false when there was nothing to do
  void Admit(std::unique_ptr<Sequence> seq);
  void Decode();
  void Finish(size_t index, const absl::Status& status);

  const InferenceModel* model_;
  MoeExecutor* executor_;
  const EngineOptions options_;
  std::unique_ptr<KvCache> cache_;

  mutable absl::Mutex mu_;
  std::deque<std::unique_ptr<Sequence>> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> cancelled_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool drain_ ABSL_GUARDED_BY(mu_) = true;
  int live_count_ ABSL_GUARDED_BY(mu_) = 0;

  // Owned by the stepping thread.
  std::vector<std::unique_ptr<Sequence>> live_;
  std::thread thread_;
};

// Several engines over one model and one executor, each with its own thread, KV cache and batch
// (up to max_batch sequences per lane). With a remote executor a lane spends most of a step
// waiting on the router and the pools; another lane computes its dense layers meanwhile, so the
// orchestrator and the pools overlap instead of taking turns. A request stays in the lane it was
// given (EngineOptions::lane_rows); its tokens are the same in any lane (routing noise is keyed
// per token, not per batch). Thread-safe.
class EngineLanes {
 public:
  // REQUIRES: lanes >= 1; model and executor outlive this; the executor is thread-safe.
  EngineLanes(const InferenceModel* model, MoeExecutor* executor, const EngineOptions& options,
              int lanes);

  absl::StatusOr<uint64_t> Submit(GenerateParams params, GenerateCallbacks callbacks);
  void Cancel(uint64_t request_id);
  void Start();
  void Stop(bool drain);
  int load() const;
  int lanes() const { return static_cast<int>(lanes_.size()); }
  // Sequences decoded together at most, over all lanes.
  int max_batch() const;

 private:
  const int lane_rows_;
  std::vector<std::unique_ptr<Engine>> lanes_;
  absl::Mutex submit_mu_;  // so that simultaneous arrivals see each other's load
};

}  // namespace moe

#endif  // MOE_MODELS_ENGINE_H_
