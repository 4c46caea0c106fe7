// "What does each expert do": runs a labelled split through a checkpoint and writes, per layer
// and expert, its token share, the POS tags and genres it receives most relative to their base
// rate (lift), and example tokens. The labels come from the corpus, not from guesses.
#ifndef MOE_MODELS_TRAIN_ANALYSIS_H_
#define MOE_MODELS_TRAIN_ANALYSIS_H_

#include <string>

#include "absl/status/statusor.h"

namespace moe {

struct AnalysisInputs {
  std::string model_dir;
  std::string ids;     // uint16 token ids
  std::string tags;    // uint8 per token: POS tag index (255 = none)
  std::string genres;  // uint8 per token: genre index (255 = none)
  std::string labels;  // JSON {"tags": [...], "genres": [...]}
  int seq_len = 256;
};

// Writes the profiles JSON to out_path; returns a human-readable summary (per-layer balance).
absl::StatusOr<std::string> AnalyzeExperts(const AnalysisInputs& in, const std::string& out_path);

}  // namespace moe

#endif  // MOE_MODELS_TRAIN_ANALYSIS_H_
