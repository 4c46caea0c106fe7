// The OpenAI-compatible HTTP API of the orchestrator: POST /v1/completions (whole, or streamed as
// server-sent events, one event per token as it is made, then `data: [DONE]`) and GET /v1/models.
// Requests go through the same Generations as the gRPC API, so the validator, the admission limit,
// the metrics and the routing events are the same; greedy text equals Complete's.
//
// Thread-safe: Handle runs on the HTTP server's connection threads, one request each, and blocks
// its thread until the request is over (or its client leaves, which cancels it).
#ifndef MOE_SERVICES_ORCHESTRATOR_OPENAI_API_H_
#define MOE_SERVICES_ORCHESTRATOR_OPENAI_API_H_

#include <cstdint>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "models/config.h"
#include "models/tokenizer.h"
#include "services/common/http_server.h"
#include "services/orchestrator/generations.h"

namespace moe {

class OpenAiApi {
 public:
  // REQUIRES: generations and tokenizer outlive this. `model` is the id /v1/models lists and
  // `model` in a request must name (the model's name, e.g. "brown-moe").
  OpenAiApi(Generations* generations, const ModelConfig& config, std::string model);

  void Handle(const HttpRequest& req, HttpResponse& resp);

  // The body of the HTTP server's own errors (413, 400, ...), in OpenAI's error shape.
  static std::pair<std::string, std::string> ServerErrorBody(int status, absl::string_view message);

 private:
  void Completions(const HttpRequest& req, HttpResponse& resp);
  void Models(HttpResponse& resp);

  Generations* const generations_;
  const ModelConfig config_;
  const std::string model_;
  const int64_t created_;
};

}  // namespace moe

#endif  // MOE_SERVICES_ORCHESTRATOR_OPENAI_API_H_
