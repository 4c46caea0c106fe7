#include "models/embedded.h"

#include "models/checkpoint.h"
#include "models/inference.h"
#include "models/moe_executor.h"

namespace moe {

MoeExecutor& EmbeddedModel::executor() { return *executor_; }

EmbeddedModel::~EmbeddedModel() {
  if (engine_ != nullptr) engine_->Stop(/*drain=*/false);
}

absl::StatusOr<std::unique_ptr<EmbeddedModel>> EmbeddedModel::Load(const ModelSource& source,
                                                                   const EngineOptions& options) {
  absl::StatusOr<Checkpoint> ckpt = LoadModel(source);
  if (!ckpt.ok()) return ckpt.status();
  std::unique_ptr<EmbeddedModel> m(new EmbeddedModel());
  m->config_ = ckpt->config;
  m->profiles_json_ = ckpt->profiles_json;
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizerFor(source, ckpt->config);
  if (!tok.ok()) return tok.status();
  m->tokenizer_ = std::move(*tok);
  absl::StatusOr<InferenceModel> model = InferenceModel::Create(ckpt->config, ckpt->state);
  if (!model.ok()) return model.status();
  m->model_ = std::make_unique<InferenceModel>(std::move(*model));
  absl::StatusOr<std::unique_ptr<LocalMoeExecutor>> exec =
      LocalMoeExecutor::Create(ckpt->config, ckpt->state);
  if (!exec.ok()) return exec.status();
  m->executor_ = std::move(*exec);
  m->engine_ = std::make_unique<Engine>(m->model_.get(), m->executor_.get(), options);
  return m;
}

absl::Status EmbeddedModel::SetPolicy(const RoutingPolicy& policy) {
  return executor_->SetPolicy(policy);
}

RoutingPolicy EmbeddedModel::policy() const { return executor_->policy(); }

absl::Status EmbeddedModel::Generate(GenerateParams params,
                                     const std::function<void(const TokenOutput&)>& on_token) {
  absl::Status result;
  GenerateCallbacks callbacks;
  callbacks.on_token = on_token;
  callbacks.on_done = [&result](const absl::Status& s) { result = s; };
  absl::StatusOr<uint64_t> id = engine_->Submit(std::move(params), std::move(callbacks));
  if (!id.ok()) return id.status();
  engine_->RunUntilIdle();
  return result;
}

}  // namespace moe
