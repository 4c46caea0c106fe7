// Expert FFNs and sparse dispatch: each expert runs only on the tokens routed to it
// (gather -> matmul -> scatter), and the combine is one fixed order of operations shared by the
// embedded runner and the distributed orchestrator, so both produce bit-identical sums.
#ifndef MOE_MODELS_EXPERTS_H_
#define MOE_MODELS_EXPERTS_H_

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "models/config.h"
#include "models/packed_matmul.h"

namespace moe {

// y = gelu(x @ w1^T) @ w2^T, with exact (erf) GELU. x [n, C], w1 [d, C], w2 [C, d] -> [n, C].
// `hidden_dropout` > 0 (training only) drops the hidden activations gelu(x @ w1^T).
torch::Tensor ExpertForward(const torch::Tensor& x, const torch::Tensor& w1,
                            const torch::Tensor& w2, double hidden_dropout = 0);

// Which rows each (micro-)expert processes, and where its outputs go back.
struct DispatchPlan {
  std::vector<int64_t> experts;            // flat ids with at least one row, ascending
  std::vector<std::vector<int32_t>> rows;  // token indices per expert, ascending
  // [N*k] int64: for each (token, slot), the row of the concatenated expert outputs (in `experts`
  // order) holding its result; dropped slots point at one extra zero row.
  torch::Tensor inverse;
  int64_t total_rows = 0;
  int64_t n_tokens = 0;
  int64_t top_k = 0;
};

// REQUIRES: expert_ids [N, k] int64 on the CPU; -1 marks a dropped slot.
DispatchPlan PlanDispatch(const torch::Tensor& expert_ids);

// Sum over slots of weight * expert output, in slot order.
// REQUIRES: outputs[i] is expert plan.experts[i]'s output for plan.rows[i]; weights [N, k].
torch::Tensor CombineExpertOutputs(const std::vector<torch::Tensor>& outputs,
                                   const DispatchPlan& plan, const torch::Tensor& weights,
                                   int64_t d_model);

// Contiguous weights of the (micro-)experts a process hosts, keyed by (layer, id). Not
// thread-safe to build; read-only afterwards, so concurrent readers are fine. A pool that changes
// what it hosts builds a changed copy (Changed) and swaps it in, so running calls keep theirs.
class ExpertBank {
 public:
  // On the CPU packed once (packed_matmul.h): an expert sees a few rows per step, and a BLAS
  // call would re-pack the whole weight for them. On other devices transposed ([in, out],
  // contiguous) for x @ w.
  struct Weights {
    torch::Tensor w1t;                             // [C, d]; devices other than the CPU
    torch::Tensor w2t;                             // [d, C]
    std::shared_ptr<const PackedMatrix> w1p, w2p;  // the CPU: [C, d] and [d, C], packed
  };
  // Which experts to keep: (layer, base expert) for routed, (layer, shared id) for shared.
  using HostFilter = std::function<bool(int layer, int expert, bool shared)>;

  // Copies the hosted experts out of a state dict (names as in docs/ARCHITECTURE.md), splits
  // routed experts into micro-experts, and moves them to `device`.
  static absl::StatusOr<ExpertBank> Build(const ModelConfig& config,
                                          const std::map<std::string, torch::Tensor>& state,
                                          const HostFilter& hosts, torch::Device device);

  // A copy without the experts `drop` selects and with those `add` selects (from `state`, as
  // Build does; experts already here are kept, not rebuilt). The copy shares the weights it
  // keeps: tensors are reference-counted, so only added experts cost memory and time.
  absl::StatusOr<ExpertBank> Changed(const ModelConfig& config,
                                     const std::map<std::string, torch::Tensor>& state,
                                     const HostFilter& add, const HostFilter& drop) const;

  // Whether the base expert (all its micro-experts) or the shared expert is here.
  bool Hosts(int layer, int expert, bool shared, int granularity) const {
    return shared ? Shared(layer, expert) != nullptr
                  : Routed(layer, expert * granularity) != nullptr;
  }

  // nullptr when not hosted.
  const Weights* Routed(int layer, int flat_id) const;
  const Weights* Shared(int layer, int shared_id) const;

  // One expert on rows of x ([n, C]; all rows when `rows` is empty): the single place expert
  // math runs, in the embedded runner and in pools alike. REQUIRES: the expert is hosted.
  torch::Tensor Run(int layer, int id, bool shared, const torch::Tensor& x,
                    absl::Span<const int32_t> rows) const;
  torch::Device device() const { return device_; }

 private:
  explicit ExpertBank(torch::Device device) : device_(device) {}
  Weights MakeWeights(const torch::Tensor& w1, const torch::Tensor& w2) const;
  // Run on a CPU bank: the packed weights, rows gathered by hand.
  static torch::Tensor RunPacked(const Weights& w, const torch::Tensor& x,
                                 absl::Span<const int32_t> rows);
  // Adds what `hosts` selects and is not here yet.
  absl::Status Add(const ModelConfig& config, const std::map<std::string, torch::Tensor>& state,
                   const HostFilter& hosts);
  torch::Device device_;
  std::map<std::pair<int, int>, Weights> routed_;
  std::map<std::pair<int, int>, Weights> shared_;
};

}  // namespace moe

#endif  // MOE_MODELS_EXPERTS_H_
