// Checkpoint directories: config.json + model.pt (a PyTorch state dict that Python's torch.load
// opens) + tokenizer.model (+ expert_profiles.json when analysed).
#ifndef MOE_MODELS_CHECKPOINT_H_
#define MOE_MODELS_CHECKPOINT_H_

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "models/config.h"
#include "models/tokenizer.h"

namespace moe {

inline constexpr char kStateFile[] = "model.pt";
inline constexpr char kConfigFile[] = "config.json";
inline constexpr char kTokenizerFile[] = "tokenizer.model";
inline constexpr char kProfilesFile[] = "expert_profiles.json";

struct Checkpoint {
  ModelConfig config;
  std::map<std::string, torch::Tensor> state;  // float32, CPU
  std::string dir;                             // empty for random init
  std::string profiles_json;                   // expert_profiles.json contents, if any
};

// Reads and validates a checkpoint: every tensor the config implies must be present with its
// shape and finite; unexpected tensors are refused too. The error lists all problems at once.
absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& dir);

absl::StatusOr<Checkpoint> RandomCheckpoint(const ModelConfig& config, uint64_t seed);

// Checkpoint (from a dir or random init) per the source.
absl::StatusOr<Checkpoint> LoadModel(const ModelSource& source);

// The tokenizer that goes with a model: source.tokenizer, else <dir>/tokenizer.model. A random
// model uses source.tokenizer when its vocabulary size matches, else a byte tokenizer.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFor(const ModelSource& source,
                                                            const ModelConfig& config);

// Writes config.json and model.pt (float16 on disk when `half`). Creates the directory.
absl::Status SaveCheckpoint(const std::string& dir, const ModelConfig& config,
                            const std::map<std::string, torch::Tensor>& state, bool half);

// Reads/writes a name -> tensor dict in torch's pickle format.
absl::StatusOr<std::map<std::string, torch::Tensor>> ReadStateFile(const std::string& path);
absl::Status WriteStateFile(const std::string& path,
                            const std::map<std::string, torch::Tensor>& state);

}  // namespace moe

#endif  // MOE_MODELS_CHECKPOINT_H_
