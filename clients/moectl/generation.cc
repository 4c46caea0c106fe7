#include "clients/moectl/generation.h"

#include <cstdio>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace moe::cli {

void Printer::Token(const RoutingRow& row, const std::string& text_chunk) {
  if (!row.is_prompt) ++generated_;
  if (routing_) {
    std::printf("%s\n", FormatRoutingRow(row, granularity_, /*show_pools=*/true).c_str());
    if (!row.is_prompt) text_ += text_chunk;
  } else {
    std::fputs(text_chunk.c_str(), stdout);
  }
  std::fflush(stdout);
}

void Printer::Logprobs(const std::string& token, float logprob,
                       const std::vector<std::pair<std::string, float>>& top) {
  absl::StrAppend(&logprobs_, absl::StrFormat("%-16s %9.4f ", absl::CEscape(token), logprob));
  for (const auto& [t, lp] : top) {
    absl::StrAppend(&logprobs_, absl::StrFormat(" %s=%.4f", absl::CEscape(t), lp));
  }
  logprobs_ += "\n";
}

void Printer::Finish(const std::string& finish_reason, uint64_t seed, double seconds) {
  if (routing_) {
    std::printf("text: %s\n", text_.c_str());
  } else {
    std::printf("\n");
  }
  if (!logprobs_.empty()) {
    std::printf("%-16s %9s  top alternatives\n%s", "token", "logprob", logprobs_.c_str());
  }
  text_.clear();
  logprobs_.clear();
  std::fprintf(stderr, "[%d tokens, %s, seed %llu, %.1f tokens/s]\n", generated_,
               finish_reason.c_str(), static_cast<unsigned long long>(seed),
               seconds > 0 ? generated_ / seconds : 0.0);
}

}  // namespace moe::cli
