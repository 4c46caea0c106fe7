// The life of one Generate/Complete request between the API and the engine: validates it, gives
// it an id, submits it to the engine, and turns each engine token into the response message for
// its caller, the routing events of the event hub and the request metrics; at the end it
// publishes the finish event and counts the outcome. The API's reactors (generate_reactors.h)
// only move messages to and from the wire.
//
// Thread-safe. Callbacks of one request run on the engine thread that steps it, in order.
#ifndef MOE_SERVICES_ORCHESTRATOR_GENERATIONS_H_
#define MOE_SERVICES_ORCHESTRATOR_GENERATIONS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "models/config.h"
#include "models/engine.h"
#include "models/tokenizer.h"
#include "moe/v1/orchestrator.pb.h"
#include "services/common/log.h"
#include "services/orchestrator/event_hub.h"

namespace moe {

// One request's state, shared by its reactor and the engine's callbacks.
struct Generation {
  // Set by the reactor before Generations::Start; called on the engine thread.
  std::function<void(moe::v1::GenerateResponse)> on_message;  // every token the client sees
  std::function<void(const absl::Status&)> on_finish;         // once, at the end

  // Filled by Start.
  std::string id;
  GenerateParams params;

  // Asks the engine to stop the request (it then finishes CANCELLED); safe before, during or
  // after Start, from any thread.
  void Cancel();

 private:
  friend class Generations;
  EngineLanes* engine = nullptr;
  std::unique_ptr<StreamDecoder> decoder;
  absl::Time start;
  absl::Time last_token;
  int generated = 0;
  bool echo_prompt = false;  // the client wants prompt tokens too (events always get them)
  absl::Mutex mu;
  uint64_t engine_id ABSL_GUARDED_BY(mu) = 0;
  bool cancel_asked ABSL_GUARDED_BY(mu) = false;
};

class Generations {
 public:
  // At most `max_requests` requests are admitted at a time (queued or decoding); more are
  // refused RESOURCE_EXHAUSTED, so that a flood cannot grow the queue without bound.
  Generations(const ModelConfig& config, const Tokenizer* tokenizer, EngineLanes* engine,
              EventHub* hub, const Logger* logger, prometheus::Registry& registry,
              int max_requests = 256);

  // Validates `req` and submits it. On success the request runs and ends with g->on_finish; on
  // error (INVALID_ARGUMENT naming the field, RESOURCE_EXHAUSTED naming the limit, or the
  // engine's refusal) nothing was started and neither callback will be called.
  absl::Status Start(std::shared_ptr<Generation> g, const moe::v1::GenerateRequest& req);

 private:
  void OnToken(Generation& g, const TokenOutput& t);
  void OnDone(Generation& g, const absl::Status& status);
  void CountFinished(absl::StatusCode code);

  const ModelConfig config_;
  const Tokenizer* const tokenizer_;
  EngineLanes* const engine_;
  EventHub* const hub_;
  const Logger* const logger_;
  const int max_requests_;
  std::atomic<int> admitted_{0};  // requests between Start and their end
  std::atomic<uint64_t> next_id_{1};
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Counter* tokens_generated_;
  prometheus::Histogram* ttft_;
  prometheus::Histogram* itl_;
  prometheus::Gauge* inflight_;
};

}  // namespace moe

#endif  // MOE_SERVICES_ORCHESTRATOR_GENERATIONS_H_
