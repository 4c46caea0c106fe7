// The whole model in one process: checkpoint, tokenizer, dense part, local experts and an
// engine. What `moectl generate --embedded` runs, and the oracle the distributed path must match.
// Torch-free header. Thread-safe like Engine.
#ifndef MOE_MODELS_EMBEDDED_H_
#define MOE_MODELS_EMBEDDED_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "models/config.h"
#include "models/engine.h"
#include "models/threads.h"  // SetIntraOpThreads, for the binaries that load a model
#include "models/tokenizer.h"

namespace moe {

struct ModelSource;
class InferenceModel;
class LocalMoeExecutor;
class MoeExecutor;

class EmbeddedModel {
 public:
  static absl::StatusOr<std::unique_ptr<EmbeddedModel>> Load(const ModelSource& source,
                                                             const EngineOptions& options);
  ~EmbeddedModel();

  const ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const std::string& profiles_json() const { return profiles_json_; }
  Engine& engine() { return *engine_; }
  // The parts the engine runs on, to build other engines over the same weights (EngineLanes).
  const InferenceModel& inference_model() const { return *model_; }
  MoeExecutor& executor();  // thread-safe
  absl::Status SetPolicy(const RoutingPolicy& policy);
  RoutingPolicy policy() const;

  // Runs one request to completion in the calling thread. REQUIRES: engine not Started.
  absl::Status Generate(GenerateParams params,
                        const std::function<void(const TokenOutput&)>& on_token);

 private:
  EmbeddedModel() = default;
  ModelConfig config_;
  std::string profiles_json_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<InferenceModel> model_;
  std::unique_ptr<LocalMoeExecutor> executor_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace moe

#endif  // MOE_MODELS_EMBEDDED_H_
