// The public Orchestrator API: Generate (server streaming), Complete, GetModelInfo, GetPlacement
// and WatchRouting, on gRPC's callback API so that no thread blocks on a slow client. The methods
// are thin: a request's life is in generations.h, the streams' wire side in generate_reactors.h
// and watch_reactor.h. Thread-safe.
#ifndef MOE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_
#define MOE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_

#include <prometheus/registry.h>

#include <string>

#include "models/config.h"
#include "models/engine.h"
#include "models/tokenizer.h"
#include "moe/v1/orchestrator.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"
#include "services/common/log.h"
#include "services/orchestrator/event_hub.h"
#include "services/orchestrator/generations.h"

namespace moe {

// What the service uses and does not own; every pointer outlives the service.
struct OrchestratorDeps {
  ModelConfig config;
  const Tokenizer* tokenizer;
  EngineLanes* engine;
  EventHub* hub;
  moe::v1::Router::Stub* router;  // GetPlacement is the router's answer
  std::string profiles_json;
  const Logger* logger;
  int max_requests = 256;  // admitted at a time (see Generations); more are RESOURCE_EXHAUSTED
};

// WatchRouting is served raw: its messages are assembled from events the hub serialized once for
// every subscriber (see event_hub.h); on the wire it is the declared moe.v1 method.
class OrchestratorService final : public moe::v1::Orchestrator::WithRawCallbackMethod_WatchRouting<
                                      moe::v1::Orchestrator::CallbackService> {
 public:
  OrchestratorService(OrchestratorDeps deps, prometheus::Registry& registry);

  grpc::ServerWriteReactor<moe::v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* ctx, const moe::v1::GenerateRequest* req) override;
  grpc::ServerUnaryReactor* Complete(grpc::CallbackServerContext* ctx,
                                     const moe::v1::GenerateRequest* req,
                                     moe::v1::CompleteResponse* resp) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* ctx,
                                         const moe::v1::GetModelInfoRequest* req,
                                         moe::v1::ModelInfo* resp) override;
  grpc::ServerUnaryReactor* GetPlacement(grpc::CallbackServerContext* ctx,
                                         const moe::v1::GetPlacementRequest* req,
                                         moe::v1::Placement* resp) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchRouting(grpc::CallbackServerContext* ctx,
                                                           const grpc::ByteBuffer* req) override;

  // Where requests start; the OpenAI-compatible HTTP API (openai_api.h) starts them here too.
  Generations& generations() { return generations_; }

 private:
  const OrchestratorDeps deps_;
  Generations generations_;
};

}  // namespace moe

#endif  // MOE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_
