// Chaos on real processes: with every expert on both pools, 32 streams of greedy requests run
// while, every few seconds, a random pool is killed (SIGKILL) or frozen (SIGSTOP, then SIGCONT)
// and brought back. No request may fail, and every answer's tokens must be the embedded
// model's. Then the router: killed, requests fail UNAVAILABLE naming it; restarted, the cluster
// serves again by itself.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <map>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "moe/v1/orchestrator.grpc.pb.h"
#include "services/testing/load_generator.h"
#include "tests/integration/cluster.h"

namespace moe {
namespace {

using testing::Cluster;
using testing::LoadGenerator;

constexpr int kTokens = 6;

std::map<std::string, std::vector<int>> Oracle(const std::vector<std::string>& prompts) {
  ModelSource source;
  source.model_dir = Cluster::SourceDir() + "/models/brown-moe";
  absl::StatusOr<std::map<std::string, std::vector<int>>> want =
      testing::EmbeddedGreedyTokens(source, prompts, kTokens);
  EXPECT_TRUE(want.ok()) << want.status();
  return want.ok() ? *std::move(want) : std::map<std::string, std::vector<int>>();
}

TEST(ChaosTest, PoolsKilledAndFrozenUnderLoadLoseNothingAndARouterRestartRecovers) {
  const std::map<std::string, std::vector<int>> want =
      Oracle({"The jury said", "It was a dark", "She looked at", "In the city of"});
  testing::ClusterOptions o;
  o.model_args = {"--model=" + Cluster::SourceDir() + "/models/brown-moe", "--threads=1"};
  o.pools = {{"pool-a", "all", ""}, {"pool-b", "all", ""}};
  // A frozen pool answers nothing: give up on it after 2 s rather than 10.
  o.orchestrator_args = {"--forward_deadline_ms=2000"};
  o.router_args = {"--rebalance_interval_s=0"};
  Cluster cluster(o);
  MOE_ASSERT_OK(cluster.Start());
  {
    LoadGenerator load({cluster.address("orchestrator"), cluster.ClientCredentials()}, &want,
                       kTokens, /*streams=*/32,
                       /*max_each=*/100000);
    std::mt19937 rng(7);
    const absl::Time end = absl::Now() + absl::Seconds(60);
    int events = 0;
    while (absl::Now() < end) {
      absl::SleepFor(absl::Seconds(3));
      const std::string pool = rng() % 2 == 0 ? "pool-a" : "pool-b";
      if (rng() % 2 == 0) {
        cluster.Kill(pool);
        absl::SleepFor(absl::Seconds(1));
        MOE_ASSERT_OK(cluster.Restart(pool));
      } else {
        cluster.Signal(pool, SIGSTOP);
        absl::SleepFor(absl::Seconds(2));
        cluster.Signal(pool, SIGCONT);
      }
      ++events;
    }
    load.Stop();
    std::printf("chaos: %d requests under %d pool kills and freezes, %zu failed, %zu wrong\n",
                load.done(), events, load.failures().size(), load.wrong().size());
    EXPECT_GE(events, 8);  // one every 7 s at least, also under the sanitizers
    EXPECT_GT(load.done(), 200);
    EXPECT_TRUE(load.failures().empty()) << load.failures().size() << " of " << load.done()
                                         << " failed, e.g. " << load.failures().front();
    EXPECT_TRUE(load.wrong().empty()) << load.wrong().size() << " wrong";
  }

  // The router down: requests fail fast, naming it; back: served again without restarting
  // anything else.
  auto stub = moe::v1::Orchestrator::NewStub(cluster.Dial("orchestrator"));
  auto complete = [&]() {
    moe::v1::GenerateRequest req;
    req.set_prompt("The jury said");
    req.set_max_tokens(kTokens);
    req.set_temperature(0);
    moe::v1::CompleteResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    const grpc::Status st = stub->Complete(&ctx, req, &resp);
    return std::make_pair(st, std::vector<int>(resp.token_ids().begin(), resp.token_ids().end()));
  };
  cluster.Kill("router");
  const auto [down, unused] = complete();
  EXPECT_EQ(down.error_code(), grpc::StatusCode::UNAVAILABLE) << down.error_message();
  EXPECT_TRUE(absl::StrContains(down.error_message(), "router")) << down.error_message();
  MOE_ASSERT_OK(cluster.Restart("router"));
  bool back = false;
  for (int i = 0; i < 50 && !back; ++i) {
    const auto [st, tokens] = complete();
    back = st.ok() && tokens == want.at("The jury said");
    if (!back) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(back) << "the cluster did not recover after the router came back";
}

}  // namespace
}  // namespace moe
