// The OpenAI-compatible API's request bodies (POST /v1/completions) on outside bytes: each parses
// into one well-formed GenerateRequest per prompt or fails INVALID_ARGUMENT naming a field, and
// the error's OpenAI shape is valid JSON.
#include "nlohmann/json.hpp"
#include "services/orchestrator/openai_request.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<moe::CompletionsRequest> r = moe::ParseCompletionsBody(body);
  if (!r.ok()) {
    FUZZ_CHECK(r.status().code() == absl::StatusCode::kInvalidArgument, r.status().ToString());
    FUZZ_CHECK(!r.status().message().empty(), "an error without a message");
    const moe::ApiError e = moe::ApiErrorFrom(r.status());
    FUZZ_CHECK(e.http_status == 400, "a parse error that is not 400");
    FUZZ_CHECK(!nlohmann::json::parse(moe::ApiErrorJson(e), nullptr, false).is_discarded(),
               "an error body that is not JSON");
    return 0;
  }
  FUZZ_CHECK(!r->prompts.empty() && r->prompts.size() <= moe::kOpenAiMaxPrompts,
             "prompt count out of range");
  for (const moe::v1::GenerateRequest& g : r->prompts) {
    FUZZ_CHECK(!g.has_n() || g.n() == r->n, "n differs between the body and a request");
  }
  return 0;
}
