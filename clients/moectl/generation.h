// What moectl's two ways to generate share: the request's arguments and the printer of the
// answer (text, routing rows, log-probabilities, the summary line). Free of gRPC and LibTorch, as
// both moectl and moectl-embedded (the same program with the model in) link it.
#ifndef MOE_CLIENTS_MOECTL_GENERATION_H_
#define MOE_CLIENTS_MOECTL_GENERATION_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "clients/moectl/routing_table.h"

namespace moe::cli {

struct GenerateArgs {
  std::string prompt;
  int max_tokens = 64;
  float temperature = 0.8f;
  int top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;
  int n = 1;                      // completions; completion i samples with seed + i
  std::vector<std::string> stop;  // stop sequences
  float presence_penalty = 0;
  float frequency_penalty = 0;
  float repetition_penalty = 1;
  int logprobs = -1;  // -1 = off; else print each token's and N alternatives'
  bool routing = false;
  bool echo_prompt = false;
  double deadline_s = 300;
};

// Streams text, or routing rows with --routing, to stdout. Not thread-safe.
class Printer {
 public:
  explicit Printer(bool routing) : routing_(routing) {}
  void SetGranularity(int m) { granularity_ = m; }
  void Token(const RoutingRow& row, const std::string& text_chunk);
  // One generated token's log-probabilities, printed as a table after the text.
  void Logprobs(const std::string& token, float logprob,
                const std::vector<std::pair<std::string, float>>& top);
  void Finish(const std::string& finish_reason, uint64_t seed, double seconds);

 private:
  bool routing_;
  int granularity_ = 1;
  int generated_ = 0;
  std::string text_;
  std::string logprobs_;
};

}  // namespace moe::cli

#endif  // MOE_CLIENTS_MOECTL_GENERATION_H_
