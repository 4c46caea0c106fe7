// The one validator of the public Generate/Complete request: defaults for omitted fields, and
// INVALID_ARGUMENT naming the field for anything out of range. Prompts longer than the context
// are refused, never silently truncated. Pure functions; thread-safe.
#ifndef MOE_SERVICES_ORCHESTRATOR_GENERATE_REQUEST_H_
#define MOE_SERVICES_ORCHESTRATOR_GENERATE_REQUEST_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/config.h"
#include "models/engine.h"
#include "models/tokenizer.h"
#include "moe/v1/orchestrator.pb.h"

namespace moe {

inline constexpr int kMaxTokensLimit = 1024;
inline constexpr int kDefaultMaxTokens = 64;
inline constexpr float kDefaultTemperature = 0.8f;
inline constexpr size_t kMaxPromptBytes = 64 << 10;
inline constexpr int kMaxCompletions = 16;   // n
inline constexpr int kMaxStopSequences = 4;  // as OpenAI's API
inline constexpr size_t kMaxStopBytes = 64;

struct ParsedGenerateRequest {
  GenerateParams params;  // completion 0's; completion i samples with seed + i (SeedOf)
  int n = 1;
  std::vector<std::string> stop;
};

// An omitted seed becomes a random one (echoed back in the first generated token's message).
absl::StatusOr<ParsedGenerateRequest> ParseGenerateRequest(const moe::v1::GenerateRequest& req,
                                                           const ModelConfig& config,
                                                           const Tokenizer& tokenizer);

// The sampling seed of completion `index` of a request whose seed is `seed`.
inline uint64_t SeedOf(uint64_t seed, int index) { return seed + static_cast<uint64_t>(index); }

}  // namespace moe

#endif  // MOE_SERVICES_ORCHESTRATOR_GENERATE_REQUEST_H_
