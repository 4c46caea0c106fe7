// Clients that keep an orchestrator busy for a test: `streams` threads issue greedy Complete
// requests for a fixed set of prompts (at most `max_each` each) until stopped, and check every
// answer's tokens against the expected ones (an embedded run of the same model). Used by the
// elastic-placement tests, in-process and on real processes.
//
// Thread-safe. The destructor stops and joins the clients.
#ifndef MOE_SERVICES_TESTING_LOAD_GENERATOR_H_
#define MOE_SERVICES_TESTING_LOAD_GENERATOR_H_

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "models/config.h"
#include "services/common/tls.h"

namespace moe::testing {

// What LoadGenerator checks answers against: each prompt's greedy tokens from the embedded model
// (router and experts in-process, no network) loaded from `source`.
absl::StatusOr<std::map<std::string, std::vector<int>>> EmbeddedGreedyTokens(
    const ModelSource& source, const std::vector<std::string>& prompts, int max_tokens);

class LoadGenerator {
 public:
  // `want`: prompt -> the tokens a greedy request with `max_tokens` must return; it outlives this.
  LoadGenerator(const Endpoint& target, const std::map<std::string, std::vector<int>>* want,
                int max_tokens, int streams, int max_each);
  ~LoadGenerator();

  void Stop();
  // Waits (up to two minutes) until `n` more requests have finished.
  void WaitFor(int n);
  int done();
  std::vector<std::string> failures();  // the error messages of failed requests
  // The error messages of failed requests sent at or after `t`. A request already in flight when
  // the cluster healed may still fail after it did; this leaves those out.
  std::vector<std::string> failures_of_requests_sent_since(absl::Time t);
  std::vector<std::string> wrong();  // prompts answered with other tokens than expected

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  absl::Mutex mu_;
  int done_ ABSL_GUARDED_BY(mu_) = 0;
  int until_ ABSL_GUARDED_BY(mu_) = 0;
  struct Failure {
    absl::Time sent;
    std::string error;
  };
  std::vector<Failure> failures_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> wrong_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moe::testing

#endif  // MOE_SERVICES_TESTING_LOAD_GENERATOR_H_
