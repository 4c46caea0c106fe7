// The request side of the OpenAI-compatible HTTP API (openai_api.h): a POST /v1/completions body
// becomes one public GenerateRequest per prompt, so that the values are checked by the one
// validator (generate_request.h), and errors take OpenAI's shape. This file checks only what is
// the HTTP API's own: JSON types, the model's name, the prompt list, and fields that OpenAI has
// and this server does not. Pure functions; thread-safe.
#ifndef MOE_SERVICES_ORCHESTRATOR_OPENAI_REQUEST_H_
#define MOE_SERVICES_ORCHESTRATOR_OPENAI_REQUEST_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "moe/v1/orchestrator.pb.h"

namespace moe {

// OpenAI's defaults where they differ from the gRPC API's.
inline constexpr int kOpenAiDefaultMaxTokens = 16;
inline constexpr float kOpenAiDefaultTemperature = 1.0f;
inline constexpr int kOpenAiMaxPrompts = 32;

struct CompletionsRequest {
  std::string model;
  std::vector<moe::v1::GenerateRequest> prompts;  // one per prompt; each carries n, stop, ...
  int n = 1;
  int logprobs = -1;  // -1 = not asked
  bool echo = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool routing = false;        // the moe_routing extension: each token's experts, weights, pools
};

// INVALID_ARGUMENT naming the field (`max_tokens: must be an integer, got "a"`). `model` is
// only checked to be a string here; the caller compares it with the served model.
absl::StatusOr<CompletionsRequest> ParseCompletionsBody(absl::string_view body);

// An error in OpenAI's shape.
struct ApiError {
  int http_status = 500;
  std::string message;
  std::string type;   // "invalid_request_error", "server_error", ...
  std::string param;  // the field, or empty (null)
  std::string code;   // e.g. "model_not_found", or empty (null)
};

// The API error that reports `status`: INVALID_ARGUMENT is 400 with the field named in its
// message ("max_tokens: ...") as param, NOT_FOUND 404, RESOURCE_EXHAUSTED 429, UNAVAILABLE 503,
// DEADLINE_EXCEEDED 504, anything else 500.
ApiError ApiErrorFrom(const absl::Status& status);

// {"error": {"message", "type", "param", "code"}}.
std::string ApiErrorJson(const ApiError& error);

}  // namespace moe

#endif  // MOE_SERVICES_ORCHESTRATOR_OPENAI_REQUEST_H_
