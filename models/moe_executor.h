// The seam between the dense model and its experts: one call computes a MoE layer's FFN for a
// batch of tokens. In-process (LocalMoeExecutor, here) or over gRPC (the orchestrator's
// RemoteMoeExecutor): the engine cannot tell them apart.
#ifndef MOE_MODELS_MOE_EXECUTOR_H_
#define MOE_MODELS_MOE_EXECUTOR_H_

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "models/config.h"
#include "models/experts.h"
#include "models/routing.h"

namespace moe {

struct MoeLayerOutput {
  torch::Tensor output;  // [N, C]: sum_k w_k E_k(x) + shared experts
  int top_k = 0;
  std::vector<int32_t> expert_ids;         // [N*k] flat micro-expert ids; -1 = dropped
  std::vector<float> weights;              // [N*k]
  std::vector<int32_t> pool_index;         // [N*k] index into pools; empty when in-process
  std::vector<std::string> pools;          // names of the pools that computed this layer
  std::vector<int32_t> shared_pool_index;  // [n_shared]; empty when in-process
  std::vector<float> probs;                // [N * n_routed] when asked
  int64_t dropped = 0;
  double latency_ms = 0;  // wall time of this call
};

// A MoE layer under way (MoeExecutor::Begin). Not thread-safe: the thread that began it waits
// for it. Destroying one that was not waited for waits for it first.
class PendingMoeLayer {
 public:
  virtual ~PendingMoeLayer() = default;
  // REQUIRES: called at most once.
  virtual absl::StatusOr<MoeLayerOutput> Wait() = 0;
};

// Thread-safe.
class MoeExecutor {
 public:
  virtual ~MoeExecutor() = default;
  // x [N, C] float: the layer's ln2 output. token_keys [N] seed each token's routing noise.
  virtual absl::StatusOr<MoeLayerOutput> Forward(int layer, const torch::Tensor& x,
                                                 absl::Span<const uint64_t> token_keys,
                                                 bool want_probs) = 0;
  // Starts the same computation and returns before its result when the executor can overlap it
  // with the caller's own work (a remote one sends its messages and returns); this default
  // computes it at once. The engine keeps several micro-batches' layers under way this way.
  virtual std::unique_ptr<PendingMoeLayer> Begin(int layer, torch::Tensor x,
                                                 std::vector<uint64_t> token_keys, bool want_probs);
};

// Router and experts in this process: the embedded runner and the tests' oracle.
class LocalMoeExecutor : public MoeExecutor {
 public:
  static absl::StatusOr<std::unique_ptr<LocalMoeExecutor>> Create(
      const ModelConfig& config, const std::map<std::string, torch::Tensor>& state);

  absl::StatusOr<MoeLayerOutput> Forward(int layer, const torch::Tensor& x,
                                         absl::Span<const uint64_t> token_keys,
                                         bool want_probs) override;

  absl::Status SetPolicy(const RoutingPolicy& policy);
  RoutingPolicy policy() const;

 private:
  LocalMoeExecutor(const ModelConfig& config, std::vector<torch::Tensor> gates, ExpertBank bank);
  const ModelConfig config_;
  const std::vector<PackedGate> gates_;  // per layer, packed (routing.h)
  const ExpertBank bank_;
  mutable absl::Mutex mu_;
  RoutingPolicy policy_ ABSL_GUARDED_BY(mu_);
};

// Copies a [rows, cols] float tensor's data into a vector.
std::vector<float> ToFloatVector(const torch::Tensor& t);
std::vector<int32_t> ToIntVector(const torch::Tensor& t);

}  // namespace moe

#endif  // MOE_MODELS_MOE_EXECUTOR_H_
