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
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "models/config.h"
#include "models/engine.h"
#include "models/stop_text.h"
#include "models/tokenizer.h"
#include "moe/v1/orchestrator.pb.h"
#include "services/common/log.h"
#include "services/common/serial_worker.h"
#include "services/orchestrator/event_hub.h"

namespace moe {

// One request's state, shared by its reactor and the engine's callbacks. A request with n > 1
// runs as n engine sequences (completion i samples with seed + i), possibly in different lanes.
struct Generation {
  // Set by the reactor before Generations::Start. Called on the delivery thread, one call at a
  // time, in the order the engine produced them (the n completions' calls are serialized).
  std::function<void(moe::v1::GenerateResponse)> on_message;  // every token the client sees
  std::function<void(const absl::Status&)> on_finish;         // once, after every completion

  // Filled by Start.
  std::string id;
  GenerateParams params;  // completion 0's
  int n = 1;

  // Asks the engine to stop the request (it then finishes CANCELLED); safe before, during or
  // after Start, from any thread.
  void Cancel();

 private:
  friend class Generations;
  // One completion; touched only by the engine thread that steps it, except the fields under mu.
  struct Completion {
    std::string event_id;  // its request id in the event stream: id, then id/1, id/2, ...
    uint64_t seed = 0;
    std::unique_ptr<StreamDecoder> decoder;
    StopText stop;
    absl::Time last_token;
    int generated = 0;
    bool stopped = false;  // ended by a stop sequence: its CANCELLED from the engine is success
  };
  void CancelCompletion(int index);  // REQUIRES: mu not held

  EngineLanes* engine = nullptr;
  std::vector<Completion> completions;
  absl::Time start;
  bool echo_prompt = false;  // the client wants prompt tokens too (events always get them)
  absl::Mutex mu;
  std::vector<uint64_t> engine_ids ABSL_GUARDED_BY(mu);  // 0 until submitted
  std::vector<bool> stop_asked ABSL_GUARDED_BY(mu);
  bool cancel_asked ABSL_GUARDED_BY(mu) = false;
  int running ABSL_GUARDED_BY(mu) = 0;
  absl::Status status ABSL_GUARDED_BY(mu);  // the first error of a completion
};

class Generations {
 public:
  // At most `max_requests` engine sequences (a request with n completions counts n) are admitted
  // at a time (queued or decoding); more are refused RESOURCE_EXHAUSTED, so that a flood cannot
  // grow the queue without bound.
  Generations(const ModelConfig& config, const Tokenizer* tokenizer, EngineLanes* engine,
              EventHub* hub, const Logger* logger, prometheus::Registry& registry,
              int max_requests = 256);

  // Validates `req` (generate_request.h) and submits its completions. On success the request runs
  // and ends with g->on_finish; on error (INVALID_ARGUMENT naming the field, RESOURCE_EXHAUSTED
  // naming the limit, or the engine's refusal) nothing was started and neither callback will be
  // called.
  absl::Status Start(std::shared_ptr<Generation> g, const moe::v1::GenerateRequest& req);

 private:
  void OnToken(const std::shared_ptr<Generation>& g, int index, const TokenOutput& t);
  void OnDone(const std::shared_ptr<Generation>& g, int index, absl::Status status);
  void CountFinished(absl::StatusCode code, int n);

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
  // Calls on_message and on_finish, in order: a stream write costs the engine's thread ~35 us
  // per token (gRPC writes inline), which the next decode step need not wait for. Last: joined
  // first, while everything its tasks use is alive.
  SerialWorker deliver_;
};

}  // namespace moe

#endif  // MOE_SERVICES_ORCHESTRATOR_GENERATIONS_H_
