// The model family's hyperparameters and the runtime routing policy. Torch-free, so services and
// clients can include it without paying for LibTorch's headers.
#ifndef MOE_MODELS_CONFIG_H_
#define MOE_MODELS_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace moe {

// Decoder-only MoE transformer (see docs/ARCHITECTURE.md). Plain value type.
struct ModelConfig {
  std::string name = "moe";
  int vocab_size = 4096;
  int d_model = 192;
  int n_heads = 6;
  int n_layers = 3;
  int context_length = 256;
  int n_experts = 8;          // routed experts
  int n_shared = 0;           // always-on shared experts
  int granularity = 1;        // m: each expert is split into m micro-experts of width d_ff / m
  int top_k = 2;              // over all n_experts * m micro-experts
  int d_ff = 384;             // width of one routed (and shared) expert
  int eos_id = 2;             // end-of-text token
  float noise_std = 0;        // default inference routing noise
  float capacity_factor = 0;  // default: dropless

  int n_routed() const { return n_experts * granularity; }  // micro-experts the gate scores
  int d_micro() const { return d_ff / granularity; }
  int head_dim() const { return d_model / n_heads; }

  int64_t ParameterCount() const;
  // Parameters touched per token: dense part + top_k micro-experts + shared experts.
  int64_t ActiveParameterCount() const;
};

// The routing knobs that can change at runtime (router SetPolicy).
struct RoutingPolicy {
  int top_k = 2;
  float noise_std = 0;
  float capacity_factor = 0;  // 0 = dropless
  uint64_t noise_seed = 0;
};

RoutingPolicy DefaultPolicy(const ModelConfig& config);

// Where a model comes from: a checkpoint directory, or a random initialisation of a config.
struct ModelSource {
  std::string model_dir;           // checkpoint directory
  std::string random_init_config;  // if set: config.json to initialise randomly instead
  uint64_t seed = 0;               // for random init
  std::string tokenizer;           // optional override of the tokenizer file
};

// Checks every field and how they relate; the message names the field.
absl::Status ValidateConfig(const ModelConfig& config);
absl::Status ValidatePolicy(const RoutingPolicy& policy, const ModelConfig& config);

absl::StatusOr<ModelConfig> ParseConfigJson(const std::string& json_text);
absl::StatusOr<ModelConfig> LoadConfigFile(const std::string& path);
std::string ConfigToJson(const ModelConfig& config);

// A short stable hash of the architecture: services refuse to work with peers of another model.
std::string ModelId(const ModelConfig& config);

}  // namespace moe

#endif  // MOE_MODELS_CONFIG_H_
