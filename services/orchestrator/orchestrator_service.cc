#include "services/orchestrator/orchestrator_service.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/deadline.h"
#include "services/common/status.h"
#include "services/orchestrator/generate_reactors.h"
#include "services/orchestrator/watch_reactor.h"

namespace moe {

OrchestratorService::OrchestratorService(OrchestratorDeps deps, prometheus::Registry& registry)
    : deps_(std::move(deps)),
      generations_(deps_.config, deps_.tokenizer, deps_.engine, deps_.hub, deps_.logger, registry,
                   deps_.max_requests) {}

grpc::ServerWriteReactor<moe::v1::GenerateResponse>* OrchestratorService::Generate(
    grpc::CallbackServerContext*, const moe::v1::GenerateRequest* req) {
  return StartGenerateStream(generations_, *req);
}

grpc::ServerUnaryReactor* OrchestratorService::Complete(grpc::CallbackServerContext*,
                                                        const moe::v1::GenerateRequest* req,
                                                        moe::v1::CompleteResponse* resp) {
  return StartComplete(generations_, *req, resp);
}

grpc::ServerUnaryReactor* OrchestratorService::GetModelInfo(grpc::CallbackServerContext* ctx,
                                                            const moe::v1::GetModelInfoRequest*,
                                                            moe::v1::ModelInfo* info) {
  const ModelConfig& c = deps_.config;
  info->set_model_id(ModelId(c));
  info->set_name(c.name);
  info->set_vocab_size(c.vocab_size);
  info->set_d_model(c.d_model);
  info->set_n_heads(c.n_heads);
  info->set_n_layers(c.n_layers);
  info->set_context_length(c.context_length);
  info->set_n_experts(c.n_experts);
  info->set_n_shared(c.n_shared);
  info->set_granularity(c.granularity);
  info->set_top_k(c.top_k);
  info->set_d_ff(c.d_ff);
  info->set_parameters(c.ParameterCount());
  info->set_active_parameters(c.ActiveParameterCount());
  info->set_expert_profiles_json(deps_.profiles_json);
  info->set_max_batch(deps_.engine->max_batch());
  return FinishUnary(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* OrchestratorService::GetPlacement(grpc::CallbackServerContext* ctx,
                                                            const moe::v1::GetPlacementRequest*,
                                                            moe::v1::Placement* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  // Asked of the router, which knows pool health; answered when it answers.
  struct Call {
    grpc::ClientContext ctx;
    moe::v1::GetPlacementRequest req;
  };
  auto call = std::make_shared<Call>();
  SetTimeout(call->ctx, absl::Seconds(5));
  deps_.router->async()->GetPlacement(
      &call->ctx, &call->req, resp, [reactor, call](grpc::Status st) {
        absl::Status s = FromGrpcStatus(st);
        if (!s.ok()) s = absl::Status(s.code(), absl::StrCat("router: ", s.message()));
        reactor->Finish(ToGrpcStatus(s));
      });
  return reactor;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* OrchestratorService::WatchRouting(
    grpc::CallbackServerContext*, const grpc::ByteBuffer* raw) {
  return StartWatch(deps_.hub, *raw);
}

}  // namespace moe
