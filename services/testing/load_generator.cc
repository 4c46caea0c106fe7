#include "services/testing/load_generator.h"

#include <grpcpp/grpcpp.h>

#include "absl/time/clock.h"
#include "models/embedded.h"
#include "moe/v1/orchestrator.grpc.pb.h"
#include "services/common/deadline.h"

namespace moe::testing {

absl::StatusOr<std::map<std::string, std::vector<int>>> EmbeddedGreedyTokens(
    const ModelSource& source, const std::vector<std::string>& prompts, int max_tokens) {
  EngineOptions options;
  options.max_batch = 1;
  absl::StatusOr<std::unique_ptr<EmbeddedModel>> m = EmbeddedModel::Load(source, options);
  if (!m.ok()) return m.status();
  std::map<std::string, std::vector<int>> want;
  for (const std::string& prompt : prompts) {
    GenerateParams p;
    p.prompt = (*m)->tokenizer().Encode(prompt);
    p.max_new_tokens = max_tokens;
    p.sampling.temperature = 0;
    std::vector<int>& ids = want[prompt];
    absl::Status s = (*m)->Generate(std::move(p), [&](const TokenOutput& t) {
      if (!t.is_prompt) ids.push_back(t.token_id);
    });
    if (!s.ok()) return s;
  }
  return want;
}

LoadGenerator::LoadGenerator(const Endpoint& target,
                             const std::map<std::string, std::vector<int>>* want, int max_tokens,
                             int streams, int max_each) {
  std::vector<std::string> prompts;
  for (const auto& [prompt, tokens] : *want) prompts.push_back(prompt);
  for (int t = 0; t < streams; ++t) {
    threads_.emplace_back([this, target, want, prompts, max_tokens, max_each, t] {
      auto stub = moe::v1::Orchestrator::NewStub(target.Dial());
      for (int i = 0; i < max_each && !stop_.load(); ++i) {
        const std::string& prompt = prompts[(t + i) % prompts.size()];
        moe::v1::GenerateRequest req;
        req.set_prompt(prompt);
        req.set_max_tokens(max_tokens);
        req.set_temperature(0);
        moe::v1::CompleteResponse resp;
        grpc::ClientContext ctx;
        SetTimeout(ctx, absl::Seconds(120));
        const absl::Time sent = absl::Now();
        const grpc::Status st = stub->Complete(&ctx, req, &resp);
        absl::MutexLock lock(&mu_);
        ++done_;
        if (!st.ok()) {
          failures_.push_back({sent, st.error_message()});
        } else if (std::vector<int>(resp.token_ids().begin(), resp.token_ids().end()) !=
                   want->at(prompt)) {
          wrong_.push_back(prompt);
        }
      }
    });
  }
}

LoadGenerator::~LoadGenerator() { Stop(); }

void LoadGenerator::Stop() {
  stop_ = true;
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void LoadGenerator::WaitFor(int n) {
  absl::MutexLock lock(&mu_);
  until_ = done_ + n;
  mu_.AwaitWithTimeout(
      absl::Condition(
          +[](LoadGenerator* l) ABSL_NO_THREAD_SAFETY_ANALYSIS { return l->done_ >= l->until_; },
          this),
      absl::Seconds(120));
}

int LoadGenerator::done() {
  absl::MutexLock lock(&mu_);
  return done_;
}

std::vector<std::string> LoadGenerator::failures() {
  return failures_of_requests_sent_since(absl::InfinitePast());
}

std::vector<std::string> LoadGenerator::failures_of_requests_sent_since(absl::Time t) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> errors;
  for (const Failure& f : failures_) {
    if (f.sent >= t) errors.push_back(f.error);
  }
  return errors;
}

std::vector<std::string> LoadGenerator::wrong() {
  absl::MutexLock lock(&mu_);
  return wrong_;
}

}  // namespace moe::testing
