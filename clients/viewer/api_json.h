// The JSON shapes of the viewer's HTTP API (what clients/viewer/web/api.js and the page's modules
// read), and the parsing of its request bodies. Protobuf messages go through the proto3 JSON
// mapping with the proto field names and every primitive field printed (so 0 is never missing);
// 64-bit integers are therefore strings ("seed": "42"), which keeps every digit in JavaScript. Pure
// functions; thread-safe.
#ifndef MOE_CLIENTS_VIEWER_API_JSON_H_
#define MOE_CLIENTS_VIEWER_API_JSON_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "moe/v1/events.pb.h"
#include "moe/v1/orchestrator.pb.h"
#include "moe/v1/placement.pb.h"
#include "moe/v1/router.pb.h"
#include "nlohmann/json.hpp"

namespace moe::viewer {

// The proto3 JSON of `message` (proto field names, primitive fields always printed).
nlohmann::json ProtoToJson(const google::protobuf::Message& message);

// `event: token` of POST /api/generate: the GenerateResponse as is.
nlohmann::json GenerateTokenJson(const moe::v1::GenerateResponse& response);

// `event: done` of POST /api/generate.
struct GenerateSummary {
  std::string request_id;
  std::string finish_reason;
  uint64_t seed = 0;
  int prompt_tokens = 0;
  int generated_tokens = 0;
};
nlohmann::json GenerateDoneJson(const GenerateSummary& summary);

// `event: token` of GET /api/events: the TokenRouted with its LayerRouting's fields (layer,
// experts, shared, probs, latency_ms) lifted to the top level, as web/live.js's onLiveToken reads
// it, plus time_unix_micros. REQUIRES: event.has_token().
nlohmann::json LiveTokenJson(const moe::v1::RoutingEvent& event);

// `event: load` of GET /api/events: the LoadSnapshot. REQUIRES: event.has_load().
nlohmann::json LoadJson(const moe::v1::RoutingEvent& event);

// GET /api/info: {"model": ModelInfo without expert_profiles_json, "placement": Placement or
// null, "profiles": the parsed expert_profiles_json or null, "source": where the data comes from}.
// An unparsable profiles document gives null and "profiles_error" saying why.
nlohmann::json InfoJson(const moe::v1::ModelInfo& info, const moe::v1::Placement* placement,
                        absl::string_view source);

// {"code": "INVALID_ARGUMENT", "message": ...}: every error the API answers, as api.js reads it.
nlohmann::json ErrorJson(const absl::Status& status);

// The HTTP status that carries an error of this code (400, 404, 503, 504, ...).
int HttpStatusFor(absl::StatusCode code);

// Parses POST /api/generate's body: {"prompt", "max_tokens", "temperature", "top_k", "top_p",
// "seed", "n", "stop" (a string or a list), "presence_penalty", "frequency_penalty",
// "repetition_penalty", "logprobs", "include_probs", "echo_prompt"}, all optional here (the
// orchestrator validates values, so there is one validator), null = absent. Checks only JSON types
// and integer widths; seed may be a number or a string of digits (api.js writes a uint64 as a bare
// number). echo_prompt defaults to true: the page shows the prompt tokens' routing first. Errors
// are InvalidArgument naming the field: `max_tokens: must be an integer, got "abc"`.
absl::StatusOr<moe::v1::GenerateRequest> ParseGenerateBody(absl::string_view body);

// Applies POST /api/policy's body {"top_k", "noise_std", "capacity_factor", "noise_seed"} (each
// optional) to `current`: the fields given change, the others keep their value.
absl::StatusOr<moe::v1::RoutingPolicy> ApplyPolicyBody(absl::string_view body,
                                                       moe::v1::RoutingPolicy current);

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_API_JSON_H_
