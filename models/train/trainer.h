// Training and evaluation of the MoE transformer on token-id files (uint16, documents separated
// by end-of-text). Runs on CUDA when present, else on the CPU. Not thread-safe.
#ifndef MOE_MODELS_TRAIN_TRAINER_H_
#define MOE_MODELS_TRAIN_TRAINER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/config.h"

namespace moe {

struct TrainOptions {
  std::string train_ids, val_ids;  // token files
  std::string out_dir;             // checkpoints: out_dir/best, out_dir/last; out_dir/curve.tsv
  std::string tokenizer;           // copied next to the best checkpoint, if set
  int batch_size = 16;
  int seq_len = 256;
  int64_t steps = 2000;
  int warmup_steps = 100;
  double lr = 3e-3;
  double min_lr = 3e-4;
  double weight_decay = 0.1;
  double dropout = 0;         // embeddings and residual branches, training only
  double expert_dropout = 0;  // hidden activations inside the experts, training only
  double grad_clip = 1.0;
  double aux_loss_coef = 0.01;  // load-balancing loss
  double z_loss_coef = 0.001;   // router z-loss; 0 = off
  int eval_every = 200;
  int keep_every = 0;  // also keep the weights every this many steps, out_dir/steps/NNNNNN (0 = no)
  int eval_batches = 40;  // validation windows per evaluation (0 = whole split)
  uint64_t seed = 1;
  bool resume = false;        // continue from out_dir/last
  bool half_best = true;      // store out_dir/best in float16
  int64_t time_budget_s = 0;  // stop early (with a final eval) after this many seconds
  // Stop, with an evaluation and a checkpoint, once this many steps are done (0 = run to `steps`).
  // The learning-rate schedule still follows `steps`, so a run stopped here and resumed is the
  // same run as one that never stopped: the checkpoint keeps the optimizer and both random
  // streams (data order, dropout masks). Exact on the CPU; on CUDA the dropout stream restarts.
  int64_t stop_after = 0;
};

struct TrainReport {
  int64_t resumed_from = 0;  // the step a resumed run continued from; 0 for a fresh run
  int64_t steps = 0;
  double best_val_loss = 0;
  double final_train_loss = 0;
  double seconds = 0;
  double tokens_per_second = 0;
  std::string device;
};

absl::StatusOr<TrainReport> Train(const ModelConfig& config, const TrainOptions& options);

struct EvalReport {
  double cross_entropy = 0;  // nats per token
  double perplexity = 0;
  int64_t tokens = 0;  // predicted tokens
};

// Cross-entropy of a checkpoint over non-overlapping windows of `seq_len` tokens (the last, short
// window included), each window starting from an empty context. At most max_tokens (0 = all).
absl::StatusOr<EvalReport> Evaluate(const std::string& model_dir, const std::vector<uint16_t>& ids,
                                    int seq_len, int64_t max_tokens);

absl::StatusOr<std::vector<uint16_t>> ReadTokenFile(const std::string& path);

// Weight averaging: writes to out_dir the element-wise mean of checkpoints of one model (say, the
// kept weights of a run's last steps), float16 on disk when `half`, with the first one's tokenizer.
absl::Status AverageCheckpoints(const std::vector<std::string>& model_dirs,
                                const std::string& out_dir, bool half);

}  // namespace moe

#endif  // MOE_MODELS_TRAIN_TRAINER_H_
