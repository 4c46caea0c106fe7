// The public Orchestrator API over the engine: Generate (server streaming), Complete,
// GetModelInfo, GetPlacement and WatchRouting, on gRPC's callback API so that no thread blocks
// on a slow client. Thread-safe.
#ifndef MOE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_
#define MOE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <string>

#include "absl/status/statusor.h"
#include "models/config.h"
#include "models/engine.h"
#include "models/tokenizer.h"
#include "moe/v1/orchestrator.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"
#include "services/common/log.h"
#include "services/orchestrator/event_hub.h"

namespace moe {

inline constexpr int kMaxTokensLimit = 1024;
inline constexpr int kDefaultMaxTokens = 64;
inline constexpr float kDefaultTemperature = 0.8f;
inline constexpr size_t kMaxPromptBytes = 64 << 10;

// The one request validator: defaults for omitted fields, INVALID_ARGUMENT naming the field.
// Prompts longer than the context are refused (never silently truncated).
absl::StatusOr<GenerateParams> ParseGenerateRequest(const moe::v1::GenerateRequest& req,
                                                    const ModelConfig& config,
                                                    const Tokenizer& tokenizer);

struct OrchestratorDeps {
  ModelConfig config;
  const Tokenizer* tokenizer;
  EngineLanes* engine;
  EventHub* hub;
  moe::v1::Router::Stub* router;
  std::string profiles_json;
  const Logger* logger;
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

  // What one request shares with the engine's callbacks (defined in the .cc).
  struct Request;

 private:
  friend struct Request;
  std::string NextRequestId();
  // Starts a request; every token goes to on_token, the end to on_done (engine thread).
  absl::Status Start(std::shared_ptr<Request> r, const moe::v1::GenerateRequest& req);
  void CountFinished(grpc::StatusCode code);

  const OrchestratorDeps deps_;
  std::atomic<uint64_t> next_id_{1};
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Counter* tokens_generated_;
  prometheus::Histogram* ttft_;
  prometheus::Histogram* itl_;
  prometheus::Gauge* inflight_;
};

}  // namespace moe

#endif  // MOE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_
