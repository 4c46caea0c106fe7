#include "services/orchestrator/generate_request.h"

#include <random>

#include "absl/strings/str_cat.h"

namespace moe {

absl::StatusOr<GenerateParams> ParseGenerateRequest(const moe::v1::GenerateRequest& req,
                                                    const ModelConfig& config,
                                                    const Tokenizer& tokenizer) {
  GenerateParams p;
  if (req.prompt().empty()) return absl::InvalidArgumentError("prompt: must not be empty");
  if (req.prompt().size() > kMaxPromptBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt: ", req.prompt().size(), " bytes, at most ", kMaxPromptBytes));
  }
  p.max_new_tokens = req.has_max_tokens() ? req.max_tokens() : kDefaultMaxTokens;
  if (p.max_new_tokens < 1 || p.max_new_tokens > kMaxTokensLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens: must be in [1, ", kMaxTokensLimit, "], got ", p.max_new_tokens));
  }
  p.sampling.temperature = req.has_temperature() ? req.temperature() : kDefaultTemperature;
  p.sampling.top_k = req.has_top_k() ? req.top_k() : 0;
  p.sampling.top_p = req.has_top_p() ? req.top_p() : 1.0f;
  p.sampling.seed = req.has_seed() ? req.seed() : std::random_device{}() | (uint64_t{1} << 40);
  if (absl::Status s = ValidateSampling(p.sampling); !s.ok()) return s;
  p.prompt = tokenizer.Encode(req.prompt());
  if (static_cast<int>(p.prompt.size()) >= config.context_length) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt: ", p.prompt.size(), " tokens; the context holds ",
                     config.context_length, ", so a prompt may have at most ",
                     config.context_length - 1, " (prompts are refused, not truncated)"));
  }
  p.echo_prompt = req.echo_prompt();
  p.want_probs = req.include_probs();
  return p;
}

}  // namespace moe
