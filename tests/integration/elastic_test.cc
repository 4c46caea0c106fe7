// Elastic placement on real processes (the shipped model), under 32 concurrent streams of greedy
// requests whose tokens are checked against the embedded model: a rebalance that replicates and
// moves experts, then a drain followed by kill -9 of the drained pool; a pool that joins and then
// takes tokens; a killed pool that comes back. No request fails except while a pool with no
// replica is down.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "moe/v1/orchestrator.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"
#include "services/testing/load_generator.h"
#include "tests/integration/cluster.h"

namespace moe {
namespace {

using testing::Cluster;
using testing::ClusterOptions;
using testing::LoadGenerator;

constexpr int kStreams = 32;
constexpr int kTokens = 6;
const std::vector<std::string> kPrompts = {"The jury said",  "It was a dark", "She looked at",
                                           "In the city of", "He said that",  "The man who"};

std::chrono::system_clock::time_point In(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

class ElasticClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ModelSource source;
    source.model_dir = Cluster::SourceDir() + "/models/brown-moe";
    absl::StatusOr<std::map<std::string, std::vector<int>>> want =
        testing::EmbeddedGreedyTokens(source, kPrompts, kTokens);
    ASSERT_TRUE(want.ok()) << want.status();
    want_ = new std::map<std::string, std::vector<int>>(*std::move(want));
  }

  void Start(std::vector<testing::PoolLayout> pools) {
    ClusterOptions o;
    o.model_args = {"--model=" + Cluster::SourceDir() + "/models/brown-moe", "--threads=1"};
    o.pools = std::move(pools);
    o.metrics = true;
    o.router_args = {"--rebalance_interval_s=0", "--load_window_s=5", "--drop_grace_ms=200"};
    cluster_ = std::make_unique<Cluster>(o);
    MOE_ASSERT_OK(cluster_->Start());
    router_ = moe::v1::Router::NewStub(cluster_->Dial("router"));
  }

  std::unique_ptr<LoadGenerator> StartLoad() {
    return std::make_unique<LoadGenerator>(
        Endpoint(cluster_->address("orchestrator"), cluster_->ClientCredentials()), want_, kTokens,
        kStreams, /*max_each=*/200);
  }

  moe::v1::Placement Placement() {
    moe::v1::Placement p;
    grpc::ClientContext ctx;
    ctx.set_deadline(In(absl::Seconds(10)));
    EXPECT_TRUE(router_->GetPlacement(&ctx, moe::v1::GetPlacementRequest(), &p).ok());
    return p;
  }

  // Tokens the pool computed, from its /metrics page.
  double Computed(const std::string& pool) {
    std::string page;
    Cluster::RunToCompletion(
        {"/usr/bin/curl", "-s",
         absl::StrCat("http://127.0.0.1:", cluster_->metrics_port(pool), "/metrics")},
        &page);
    double sum = 0;
    for (absl::string_view line : absl::StrSplit(page, '\n')) {
      if (!absl::StartsWith(line, "moe_expert_tokens_computed_total{")) continue;
      double v = 0;
      if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) sum += v;
    }
    return sum;
  }

  static std::map<std::string, std::vector<int>>* want_;
  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<moe::v1::Router::Stub> router_;
};

std::map<std::string, std::vector<int>>* ElasticClusterTest::want_ = nullptr;

TEST_F(ElasticClusterTest, RebalanceThenDrainAndKillOfTheDrainedPoolLoseNothing) {
  Start({{"pool-a", "0-5", ""}, {"pool-b", "6-7", ""}});
  const uint64_t epoch0 = Placement().epoch();
  std::unique_ptr<LoadGenerator> load = StartLoad();
  load->WaitFor(64);
  moe::v1::RebalanceResponse r;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(absl::Seconds(120)));
    const grpc::Status st = router_->Rebalance(&ctx, moe::v1::RebalanceRequest(), &r);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  EXPECT_TRUE(r.changed()) << r.reason();
  EXPECT_GT(r.after().epoch(), epoch0);
  load->WaitFor(64);
  moe::v1::DrainPoolRequest drain;
  drain.set_pool("pool-b");
  moe::v1::Placement after;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(absl::Seconds(120)));
    const grpc::Status st = router_->DrainPool(&ctx, drain, &after);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  EXPECT_GT(after.epoch(), r.after().epoch());
  cluster_->Kill("pool-b");
  load->WaitFor(64);
  load->Stop();
  EXPECT_TRUE(load->failures().empty())
      << load->failures().size() << " failed, e.g. " << load->failures().front();
  EXPECT_TRUE(load->wrong().empty())
      << load->wrong().size() << " wrong, e.g. " << load->wrong().front();
}

TEST_F(ElasticClusterTest, AJoiningPoolTakesTokensAfterARebalance) {
  Start({{"pool-a", "all", ""}, {"pool-c", "", "", /*join=*/true}});
  std::unique_ptr<LoadGenerator> load = StartLoad();
  MOE_ASSERT_OK(cluster_->StartPool("pool-c"));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (Placement().pools_size() < 2 && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(50));
  load->WaitFor(64);
  moe::v1::RebalanceResponse r;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(absl::Seconds(120)));
    ASSERT_TRUE(router_->Rebalance(&ctx, moe::v1::RebalanceRequest(), &r).ok());
  }
  EXPECT_TRUE(r.changed()) << r.reason();
  load->WaitFor(64);
  load->Stop();
  EXPECT_GT(Computed("pool-c"), 0) << "the joined pool never computed";
  EXPECT_TRUE(load->failures().empty()) << load->failures().front();
  EXPECT_TRUE(load->wrong().empty()) << load->wrong().front();
}

TEST_F(ElasticClusterTest, AKilledPoolThatComesBackServesAgain) {
  Start({{"pool-a", "0-3", ""}, {"pool-b", "4-7", ""}});
  std::unique_ptr<LoadGenerator> load = StartLoad();
  load->WaitFor(32);
  cluster_->Kill("pool-b");
  load->WaitFor(16);  // these may fail: experts 4-7 have no replica
  MOE_ASSERT_OK(cluster_->Restart("pool-b"));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!Placement().pools(1).healthy() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(Placement().pools(1).healthy()) << "pool-b is not healthy 30 s after its restart";
  // Requests already in flight when the pool came back may still fail; none sent after it.
  const absl::Time back = absl::Now();
  load->WaitFor(64);
  load->Stop();
  const std::vector<std::string> failed = load->failures_of_requests_sent_since(back);
  EXPECT_TRUE(failed.empty()) << failed.size()
                              << " requests sent after the pool was back failed, e.g. "
                              << failed.front();
  EXPECT_TRUE(load->wrong().empty()) << load->wrong().front();
  EXPECT_GT(Computed("pool-b"), 0);
}

}  // namespace
}  // namespace moe
