// moectl's work: generation (embedded or remote), health, info and policy calls. Output goes to
// stdout (text, tables, JSON) and stderr (summaries).
#ifndef MOE_CLIENTS_MOECTL_REMOTE_H_
#define MOE_CLIENTS_MOECTL_REMOTE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "clients/moectl/routing_table.h"
#include "models/config.h"
#include "services/common/tls.h"

namespace moe::cli {

// Every remote call takes an Endpoint (services/common/tls.h): an address and its credentials.

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

absl::Status GenerateEmbedded(const ModelSource& source, const GenerateArgs& args, int threads,
                              Printer& printer);
absl::Status GenerateRemote(const Endpoint& target, const GenerateArgs& args, Printer& printer);
absl::Status CompleteRemote(const Endpoint& target, const GenerateArgs& args);
absl::Status WaitHealthy(const Endpoint& target, double timeout_s);
// True when a health check at `target` gets an answer (any status) within a few seconds.
bool Reachable(const Endpoint& target);
absl::StatusOr<std::string> ModelInfoJson(const Endpoint& target);
absl::StatusOr<std::string> PlacementJson(const Endpoint& target);
// Runs the router's rebalancer now; the placement before and after, as text.
absl::StatusOr<std::string> RebalanceNow(const Endpoint& router, double deadline_s);
// Moves every expert off `pool` and returns the placement after, as text, once it hosts nothing.
absl::StatusOr<std::string> DrainPool(const Endpoint& router, const std::string& pool,
                                      double deadline_s);
// Reads the router's policy and changes the fields given (top_k > 0, noise/capacity >= 0).
absl::StatusOr<std::string> Policy(const Endpoint& target, int top_k, double noise_std,
                                   double capacity_factor);

}  // namespace moe::cli

#endif  // MOE_CLIENTS_MOECTL_REMOTE_H_
