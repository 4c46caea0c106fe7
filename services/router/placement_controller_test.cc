// Elastic placement end to end, in one process: an orchestrator, the router and expert pools as
// real gRPC servers, with clients generating all the while. A rebalance that replicates and
// moves experts, a drain followed by the drained pool's death, a pool that joins, and a pool
// that dies and comes back: requests keep their exact tokens (the embedded model's), epochs move
// forward, and (except while a pool with no replica is down) no request fails.
#include "services/router/placement_controller.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "moe/v1/orchestrator.grpc.pb.h"
#include "services/common/deadline.h"
#include "services/router/load_meter.h"
#include "services/router/placement_table.h"
#include "services/router/replica_selector.h"
#include "services/testing/in_process_cluster.h"
#include "services/testing/load_generator.h"

namespace moe {
namespace {

using ::testing::HasSubstr;
using testing::InProcessCluster;
using testing::InProcessClusterOptions;
using testing::LoadGenerator;

constexpr int kMaxTokens = 6;
const std::vector<std::string>& Prompts() {
  static const auto* p = new std::vector<std::string>{
      "the", "a jury", "of the city", "when she", "it was", "he said", "in 1961", "we are"};
  return *p;
}

class ElasticPlacementTest : public ::testing::Test {
 protected:
  void Start(std::vector<testing::InProcessPool> pools,
             absl::Duration dead_pool_removal = absl::InfiniteDuration()) {
    InProcessClusterOptions options;
    options.pools = std::move(pools);
    options.start_empty = options.pools.empty();
    options.router.control.dead_pool_removal = dead_pool_removal;
    options.orchestrator = true;
    options.lanes = 2;
    options.max_batch = 4;
    options.router.control.health_interval = absl::Milliseconds(50);
    // These tests are about placement, not about noticing a slow pool (the chaos test freezes
    // one): a health check gets 2 s, as a loaded 2-core machine can take over 500 ms to answer.
    options.router.control.health_timeout = absl::Seconds(2);
    options.router.control.drop_grace = absl::Milliseconds(100);
    options.router.load_window = absl::Seconds(5);
    absl::StatusOr<std::unique_ptr<InProcessCluster>> c =
        InProcessCluster::Start(std::move(options));
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = *std::move(c);
    cluster_->router().StartHealthChecks();
    router_ = moe::v1::Router::NewStub(
        grpc::CreateChannel(cluster_->router_address(), grpc::InsecureChannelCredentials()));
    // The oracle: the same weights, in-process.
    absl::StatusOr<std::map<std::string, std::vector<int>>> want =
        testing::EmbeddedGreedyTokens(cluster_->source(), Prompts(), kMaxTokens);
    ASSERT_TRUE(want.ok()) << want.status();
    want_ = *std::move(want);
  }

  std::unique_ptr<LoadGenerator> StartLoad(int threads = 8, int max_each = 400) {
    return std::make_unique<LoadGenerator>(cluster_->orchestrator_address(), &want_, kMaxTokens,
                                           threads, max_each);
  }

  moe::v1::Placement Placement() {
    moe::v1::Placement p;
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(10));
    EXPECT_TRUE(router_->GetPlacement(&ctx, moe::v1::GetPlacementRequest(), &p).ok());
    return p;
  }

  static std::set<int> Experts(const moe::v1::PoolInfo& pool, int layer) {
    return {pool.hosts(layer).experts().begin(), pool.hosts(layer).experts().end()};
  }

  double Computed(int pool) {
    const std::string text =
        prometheus::TextSerializer().Serialize(cluster_->pool_registry(pool).Collect());
    double sum = 0;
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (!absl::StartsWith(line, "moe_expert_tokens_computed_total{")) continue;
      double v = 0;
      if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) sum += v;
    }
    return sum;
  }

  std::unique_ptr<InProcessCluster> cluster_;
  std::unique_ptr<moe::v1::Router::Stub> router_;
  std::map<std::string, std::vector<int>> want_;
};

TEST_F(ElasticPlacementTest, ARebalanceUnderLoadEvensASkewedPlacementAndLosesNothing) {
  // pool-a: experts 0-2 and the shared expert of every layer; pool-b: expert 3. Four slots each.
  Start({{"pool-a", {0, 1, 2}, true, 4}, {"pool-b", {3}, false, 4}});
  const uint64_t epoch0 = Placement().epoch();
  std::unique_ptr<LoadGenerator> load = StartLoad();
  load->WaitFor(40);
  moe::v1::RebalanceResponse r;
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(60));
    const grpc::Status st = router_->Rebalance(&ctx, moe::v1::RebalanceRequest(), &r);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  load->WaitFor(40);
  load->Stop();
  EXPECT_TRUE(r.changed()) << r.reason();
  for (int l = 0; l < r.predicted_after_size(); ++l) {
    EXPECT_GT(r.predicted_after(l), r.predicted_before(l)) << "layer " << l << ": " << r.reason();
    EXPECT_GE(r.predicted_after(l), 0.9) << r.reason();
  }
  EXPECT_GT(r.after().epoch(), epoch0);
  // pool-b now computes more than its one expert's share.
  int b_keys = 0;
  for (const auto& h : r.after().pools(1).hosts()) b_keys += h.experts_size() + h.shared_size();
  EXPECT_GT(b_keys, cluster_->config().n_layers);
  EXPECT_THAT(load->failures(), ::testing::IsEmpty());
  EXPECT_THAT(load->wrong(), ::testing::IsEmpty());
  EXPECT_GT(load->done(), 80);
}

TEST_F(ElasticPlacementTest, ADrainedPoolHostsNothingAndCanDieWithoutAFailedRequest) {
  Start({{"pool-a", {0, 1, 2, 3}, true, 0}, {"pool-b", {2, 3}, false, 0}});
  std::unique_ptr<LoadGenerator> load = StartLoad();
  load->WaitFor(30);
  moe::v1::DrainPoolRequest req;
  req.set_pool("pool-b");
  moe::v1::Placement after;
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(60));
    const grpc::Status st = router_->DrainPool(&ctx, req, &after);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  EXPECT_TRUE(after.pools(1).draining());
  for (const auto& h : after.pools(1).hosts()) {
    EXPECT_EQ(h.experts_size() + h.shared_size(), 0) << "layer " << h.layer();
  }
  const double computed = Computed(1);
  cluster_->StopPool(1);
  load->WaitFor(40);
  load->Stop();
  EXPECT_THAT(load->failures(), ::testing::IsEmpty());
  EXPECT_THAT(load->wrong(), ::testing::IsEmpty());
  EXPECT_GT(computed, 0) << "pool-b took tokens before the drain";
}

TEST_F(ElasticPlacementTest, AJoiningPoolTakesTokensAfterTheNextRebalance) {
  Start({{"pool-a", {0, 1, 2, 3}, true, 0}});
  std::unique_ptr<LoadGenerator> load = StartLoad();
  absl::StatusOr<int> c = cluster_->JoinPool({"pool-c", {}, false, 0});
  ASSERT_TRUE(c.ok()) << c.status();
  load->WaitFor(30);
  EXPECT_EQ(Computed(*c), 0);
  moe::v1::RebalanceResponse r;
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(60));
    ASSERT_TRUE(router_->Rebalance(&ctx, moe::v1::RebalanceRequest(), &r).ok());
  }
  EXPECT_TRUE(r.changed()) << r.reason();
  load->WaitFor(40);
  load->Stop();
  EXPECT_GT(Computed(*c), 0) << "the joined pool never computed";
  EXPECT_THAT(load->failures(), ::testing::IsEmpty());
  EXPECT_THAT(load->wrong(), ::testing::IsEmpty());
}

TEST_F(ElasticPlacementTest, APoolThatDiesAndComesBackEmptyGetsItsExpertsAgain) {
  Start({{"pool-a", {0, 1}, true, 0}, {"pool-b", {2, 3}, false, 0}});
  std::unique_ptr<LoadGenerator> load = StartLoad(4);
  load->WaitFor(10);
  cluster_->StopPool(1);
  load->WaitFor(10);  // these may fail: experts 2 and 3 have no replica
  // Back on a new port, hosting nothing: the router heals it from its placement.
  ASSERT_TRUE(cluster_->JoinPool({"pool-b", {}, false, 0}).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  bool healed = false;
  while (!healed && absl::Now() < deadline) {
    const moe::v1::Placement p = Placement();
    healed = p.pools(1).healthy() && Experts(p.pools(1), 0) == std::set<int>{2, 3};
    if (!healed) absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(healed) << "pool-b did not get experts 2 and 3 back in 20 s";
  // Requests already in flight when the pool came back may still fail; none sent after it.
  const absl::Time back = absl::Now();
  load->WaitFor(30);
  load->Stop();
  const std::vector<std::string> failed = load->failures_of_requests_sent_since(back);
  EXPECT_THAT(failed, ::testing::IsEmpty()) << "requests sent after the pool was back failed";
  EXPECT_THAT(load->wrong(), ::testing::IsEmpty());
  EXPECT_GT(Computed(1), 0);
}

TEST_F(ElasticPlacementTest, APlacementChangeAppearsInTheEventStreamWithItsEpoch) {
  Start({{"pool-a", {0, 1, 2, 3}, true, 0}, {"pool-b", {2, 3}, false, 0}});
  auto orchestrator = moe::v1::Orchestrator::NewStub(
      grpc::CreateChannel(cluster_->orchestrator_address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext watch_ctx;
  SetTimeout(watch_ctx, absl::Seconds(60));
  auto watch = orchestrator->WatchRouting(&watch_ctx, moe::v1::WatchRoutingRequest());
  std::unique_ptr<LoadGenerator> load = StartLoad(2);
  load->WaitFor(4);
  moe::v1::DrainPoolRequest drain;
  drain.set_pool("pool-b");
  moe::v1::Placement after;
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(60));
    ASSERT_TRUE(router_->DrainPool(&ctx, drain, &after).ok());
  }
  load->WaitFor(6);
  load->Stop();
  // Events of the load went by first; the placement event comes once a Route answer showed the
  // new epoch.
  bool seen = false;
  moe::v1::WatchRoutingResponse batch;
  while (!seen && watch->Read(&batch)) {
    for (const moe::v1::RoutingEvent& ev : batch.events()) {
      if (!ev.has_placement()) continue;
      const moe::v1::Placement& p = ev.placement().placement();
      if (p.epoch() < after.epoch()) continue;
      seen = true;
      EXPECT_TRUE(p.pools(1).draining());
      EXPECT_EQ(p.pools(1).hosts(0).experts_size(), 0);
    }
  }
  watch_ctx.TryCancel();
  EXPECT_TRUE(seen) << "no placement event at epoch " << after.epoch();
}

TEST_F(ElasticPlacementTest, RefusalsNameTheCulpritAndChangeNothing) {
  Start({{"pool-a", {0, 1, 2, 3}, true, 0}, {"pool-b", {2, 3}, false, 0}});
  const uint64_t epoch = Placement().epoch();
  moe::v1::DrainPoolRequest drain;
  drain.set_pool("pool-a");
  moe::v1::Placement after;
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(60));
    // pool-b has no slot limit, so it could take everything: drain pool-b first, then pool-a is
    // the last pool that can host anything.
    moe::v1::DrainPoolRequest b;
    b.set_pool("pool-b");
    ASSERT_TRUE(router_->DrainPool(&ctx, b, &after).ok());
  }
  const uint64_t drained = Placement().epoch();
  EXPECT_GT(drained, epoch);
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(60));
  const grpc::Status st = router_->DrainPool(&ctx, drain, &after);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("layer 0 expert 0: no pool can host it"));
  const moe::v1::Placement now = Placement();
  EXPECT_EQ(now.epoch(), drained) << "a refused drain changed the placement";
  EXPECT_FALSE(now.pools(0).draining());

  moe::v1::RegisterPoolRequest join;
  join.set_name("pool-x");
  join.set_address("127.0.0.1:1");
  join.set_model_id("other-model");
  moe::v1::RegisterPoolResponse joined;
  grpc::ClientContext jctx;
  const grpc::Status js = router_->RegisterPool(&jctx, join, &joined);
  EXPECT_EQ(js.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(js.error_message(), HasSubstr("other-model"));
  EXPECT_THAT(js.error_message(), HasSubstr(ModelId(cluster_->config())));

  // A wildcard listen address names no machine: the router would dial itself.
  for (const char* address : {"0.0.0.0:50061", "[::]:50061", "[::0]:50061", "pool-x", ":50061"}) {
    join.set_model_id(ModelId(cluster_->config()));
    join.set_address(address);
    grpc::ClientContext actx;
    const grpc::Status as = router_->RegisterPool(&actx, join, &joined);
    EXPECT_EQ(as.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << address;
    EXPECT_THAT(as.error_message(), HasSubstr("address: ")) << address;
  }

  drain.set_pool("pool-z");
  grpc::ClientContext zctx;
  EXPECT_EQ(router_->DrainPool(&zctx, drain, &after).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Placement().epoch(), drained);
}

TEST_F(ElasticPlacementTest, ARouterWithoutPoolsNamesTheMissingExpertsAndServesOncePoolsJoin) {
  Start({});
  EXPECT_THAT(Placement().pools(), ::testing::IsEmpty());
  auto orchestrator = moe::v1::Orchestrator::NewStub(
      grpc::CreateChannel(cluster_->orchestrator_address(), grpc::InsecureChannelCredentials()));
  moe::v1::GenerateRequest req;
  req.set_prompt("the");
  req.set_max_tokens(2);
  moe::v1::CompleteResponse resp;
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(30));
  const grpc::Status st = orchestrator->Complete(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(st.error_message(), HasSubstr("layer 0 shared expert 0"));
  EXPECT_THAT(st.error_message(), HasSubstr("no expert pool has joined this router yet"));

  // Pools that host nothing join; the router places every expert as soon as one is usable.
  ASSERT_TRUE(cluster_->JoinPool({"pool-a", {}, false, 0}).ok());
  ASSERT_TRUE(cluster_->JoinPool({"pool-b", {}, false, 0}).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::unique_ptr<LoadGenerator> load;
  while (absl::Now() < deadline) {
    const moe::v1::Placement p = Placement();
    int hosted = 0;
    for (const moe::v1::PoolInfo& pool : p.pools()) hosted += pool.hosts(0).experts_size();
    if (hosted >= cluster_->config().n_experts) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  load = StartLoad(4);
  load->WaitFor(20);
  load->Stop();
  EXPECT_THAT(load->failures(), ::testing::IsEmpty());
  EXPECT_THAT(load->wrong(), ::testing::IsEmpty());
}

TEST_F(ElasticPlacementTest, APoolDeadTooLongLeavesThePlacementAndComesBackByJoining) {
  Start({{"pool-a", {0, 1}, true, 0}, {"pool-b", {2, 3}, false, 0}}, absl::Seconds(1));
  cluster_->StopPool(1);
  // Removed after a second of failed checks; its experts, which had no other replica, go to
  // pool-a at once.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  moe::v1::Placement p = Placement();
  while (absl::Now() < deadline && (p.pools_size() != 1 || Experts(p.pools(0), 0).size() != 4)) {
    absl::SleepFor(absl::Milliseconds(50));
    p = Placement();
  }
  ASSERT_EQ(p.pools_size(), 1) << "pool-b is still in the placement";
  EXPECT_EQ(p.pools(0).name(), "pool-a");
  EXPECT_EQ(Experts(p.pools(0), 0), (std::set<int>{0, 1, 2, 3}));
  std::unique_ptr<LoadGenerator> load = StartLoad(4);
  load->WaitFor(12);
  EXPECT_THAT(load->failures(), ::testing::IsEmpty());

  // Joining again lists it again (under its old index), healthy, ready to take experts.
  ASSERT_TRUE(cluster_->JoinPool({"pool-b", {}, false, 0}).ok());
  const absl::Time back = absl::Now() + absl::Seconds(30);
  while (absl::Now() < back && (p.pools_size() != 2 || !p.pools(1).healthy())) {
    absl::SleepFor(absl::Milliseconds(50));
    p = Placement();
  }
  ASSERT_EQ(p.pools_size(), 2);
  EXPECT_EQ(p.pools(1).name(), "pool-b");
  EXPECT_TRUE(p.pools(1).healthy());
  load->WaitFor(8);
  load->Stop();
  EXPECT_THAT(load->failures(), ::testing::IsEmpty());
  EXPECT_THAT(load->wrong(), ::testing::IsEmpty());
}

// The router dials what a pool advertises: a loopback address from a pool on another host would
// have it dial itself. Checked on the caller's address, without a cluster.
TEST(PlacementControllerTest, ALoopbackAddressFromAnotherHostIsRefusedNamingAdvertise) {
  const ModelConfig config = testing::TinyConfig();
  PlacementTable table(config, ClusterSpec());
  ReplicaSelector replicas(0);
  LoadMeter meter(config.n_layers, config.n_experts + config.n_shared, absl::Seconds(30));
  prometheus::Registry registry;
  Logger log("test");
  PlacementController controller(config, &table, &replicas, &meter, ControllerOptions(), registry,
                                 &log);
  moe::v1::RegisterPoolRequest req;
  req.set_name("pool-x");
  req.set_address("127.0.0.1:50061");
  req.set_model_id(ModelId(config));
  const absl::StatusOr<uint64_t> refused = controller.Register(req, "10.0.0.2");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("address: 127.0.0.1:50061 is a loopback address, but pool pool-x called "
                        "from 10.0.0.2"));
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("--advertise"));
  EXPECT_EQ(table.pool_count(), 0) << "a refused pool was added";
  EXPECT_TRUE(controller.Register(req, "127.0.0.1").ok()) << "from its own host it may";
  req.set_address("10.0.0.2:50061");
  EXPECT_TRUE(controller.Register(req, "10.0.0.2").ok());
  EXPECT_EQ(table.pool(0).address, "10.0.0.2:50061");
}

}  // namespace
}  // namespace moe
