// The decode step's mechanics as real processes: for every micro-batch count, with speculative
// Forward on and off, concurrent requests sharing one lane's batch get exactly the tokens and the
// routing the embedded model gives each of them alone.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "models/embedded.h"
#include "moe/v1/orchestrator.grpc.pb.h"
#include "tests/integration/cluster.h"

namespace moe {
namespace {

using testing::Cluster;
using testing::ClusterOptions;

struct Result {
  std::vector<int> tokens;
  std::vector<std::vector<int>> routing;  // per generated token and layer: the flat ids
  bool operator==(const Result& o) const { return tokens == o.tokens && routing == o.routing; }
};

moe::v1::GenerateRequest Request(const std::string& prompt, int n, float temperature,
                                 uint64_t seed) {
  moe::v1::GenerateRequest r;
  r.set_prompt(prompt);
  r.set_max_tokens(n);
  r.set_temperature(temperature);
  r.set_seed(seed);
  return r;
}

// Different lengths, so that sequences leave the batch at different steps.
std::vector<moe::v1::GenerateRequest> Requests() {
  return {Request("The jury said", 20, 0.0f, 1),          Request("It was a dark and", 9, 0.8f, 7),
          Request("In the morning the", 14, 1.0f, 3),     Request("\"Yes,\" she said.", 5, 0.0f, 2),
          Request("The committee", 17, 0.0f, 4),          Request("He", 11, 0.9f, 5),
          Request("After the war, the city", 8, 0.0f, 6), Request("A", 13, 0.7f, 8)};
}

std::string ModelDir() { return Cluster::SourceDir() + "/models/brown-moe"; }

Result Embedded(EmbeddedModel& model, const moe::v1::GenerateRequest& req) {
  GenerateParams p;
  p.prompt = model.tokenizer().Encode(req.prompt());
  p.max_new_tokens = req.max_tokens();
  p.sampling.temperature = req.temperature();
  p.sampling.seed = req.seed();
  Result out;
  absl::Status s = model.Generate(p, [&](const TokenOutput& t) {
    if (t.is_prompt) return;
    out.tokens.push_back(t.token_id);
    for (const LayerRoute& r : t.routing) out.routing.emplace_back(r.ids.begin(), r.ids.end());
  });
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

Result Remote(moe::v1::Orchestrator::Stub& stub, const moe::v1::GenerateRequest& req) {
  Result out;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto reader = stub.Generate(&ctx, req);
  moe::v1::GenerateResponse msg;
  while (reader->Read(&msg)) {
    if (msg.is_prompt()) continue;
    out.tokens.push_back(msg.token_id());
    for (const auto& l : msg.routing()) {
      out.routing.emplace_back();
      for (const auto& e : l.experts()) out.routing.back().push_back(e.id());
    }
  }
  const grpc::Status s = reader->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
  return out;
}

class MicroBatchTest : public ::testing::TestWithParam<std::tuple<int, bool>> {
 protected:
  static void SetUpTestSuite() {
    ModelSource source;
    source.model_dir = ModelDir();
    auto model = EmbeddedModel::Load(source, EngineOptions());
    ASSERT_TRUE(model.ok()) << model.status();
    want_ = new std::vector<Result>();
    for (const auto& req : Requests()) want_->push_back(Embedded(**model, req));
  }
  static void TearDownTestSuite() { delete want_; }
  static std::vector<Result>* want_;
};
std::vector<Result>* MicroBatchTest::want_ = nullptr;

TEST_P(MicroBatchTest, ConcurrentRequestsInOneLaneGetTheirEmbeddedTokensAndRouting) {
  const auto [parts, speculative] = GetParam();
  ClusterOptions o = testing::TwoPoolOptions(ModelDir());
  // One lane, so that every request shares one batch and the batch is split.
  o.orchestrator_args = {"--lanes=1", absl::StrCat("--micro_batches=", parts),
                         "--micro_batch_rows=1",
                         absl::StrCat("--speculative_forward=", speculative ? "true" : "false")};
  Cluster cluster(o);
  MOE_ASSERT_OK(cluster.Start());
  auto stub = moe::v1::Orchestrator::NewStub(cluster.Dial("orchestrator"));
  const std::vector<moe::v1::GenerateRequest> reqs = Requests();
  for (int round = 0; round < 2; ++round) {  // the second round finds the predictions warm
    std::vector<Result> got(reqs.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < reqs.size(); ++i) {
      threads.emplace_back([&, i] { got[i] = Remote(*stub, reqs[i]); });
    }
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(got[i].tokens, (*want_)[i].tokens) << "round " << round << ", request " << i;
      EXPECT_TRUE(got[i] == (*want_)[i]) << "routing, round " << round << ", request " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(PartsAndSpeculation, MicroBatchTest,
                         ::testing::Values(std::make_tuple(1, true), std::make_tuple(2, true),
                                           std::make_tuple(3, true), std::make_tuple(4, true),
                                           std::make_tuple(2, false)),
                         [](const ::testing::TestParamInfo<std::tuple<int, bool>>& info) {
                           return absl::StrCat(
                               std::get<0>(info.param), "Parts",
                               std::get<1>(info.param) ? "Speculative" : "RouteThenForward");
                         });

}  // namespace
}  // namespace moe
