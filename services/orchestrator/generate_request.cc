#include "services/orchestrator/generate_request.h"

#include <random>

#include "absl/strings/str_cat.h"

namespace moe {

absl::StatusOr<ParsedGenerateRequest> ParseGenerateRequest(const moe::v1::GenerateRequest& req,
                                                           const ModelConfig& config,
                                                           const Tokenizer& tokenizer) {
  ParsedGenerateRequest parsed;
  GenerateParams& p = parsed.params;
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
  if (req.has_presence_penalty()) p.sampling.presence_penalty = req.presence_penalty();
  if (req.has_frequency_penalty()) p.sampling.frequency_penalty = req.frequency_penalty();
  if (req.has_repetition_penalty()) p.sampling.repetition_penalty = req.repetition_penalty();
  if (req.has_logprobs()) {
    if (req.logprobs() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("logprobs: must be in [0, ", kMaxLogprobs, "], got ", req.logprobs()));
    }
    p.sampling.logprobs = req.logprobs();
  }
  if (absl::Status s = ValidateSampling(p.sampling); !s.ok()) return s;
  parsed.n = req.has_n() ? req.n() : 1;
  if (parsed.n < 1 || parsed.n > kMaxCompletions) {
    return absl::InvalidArgumentError(
        absl::StrCat("n: must be in [1, ", kMaxCompletions, "], got ", parsed.n));
  }
  if (req.stop_size() > kMaxStopSequences) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop: at most ", kMaxStopSequences, " sequences, got ", req.stop_size()));
  }
  for (int i = 0; i < req.stop_size(); ++i) {
    const std::string& s = req.stop(i);
    if (s.empty() || s.size() > kMaxStopBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop[", i, "]: must be 1 to ", kMaxStopBytes, " bytes, got ", s.size()));
    }
    parsed.stop.push_back(s);
  }
  p.prompt = tokenizer.Encode(req.prompt());
  if (static_cast<int>(p.prompt.size()) >= config.context_length) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt: ", p.prompt.size(), " tokens; the context holds ",
                     config.context_length, ", so a prompt may have at most ",
                     config.context_length - 1, " (prompts are refused, not truncated)"));
  }
  p.echo_prompt = req.echo_prompt();
  p.want_probs = req.include_probs();
  return parsed;
}

}  // namespace moe
