// moectl's work: generation (embedded or remote), health, info and policy calls. Output goes to
// stdout (text, tables, JSON) and stderr (summaries).
#ifndef MOE_CLIENTS_MOECTL_REMOTE_H_
#define MOE_CLIENTS_MOECTL_REMOTE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "clients/moectl/generation.h"
#include "models/config.h"
#include "services/common/tls.h"

namespace moe::cli {

// Every remote call takes an Endpoint (services/common/tls.h): an address and its credentials.

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
