// The router in-process on a loopback port: the gates it serves, replica choice, failure
// reports, health checks, placement and its error messages, through real gRPC calls.
#include "services/router/router_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <set>

#include "absl/time/clock.h"
#include "models/routing.h"
#include "services/common/deadline.h"
#include "services/common/tensor_codec.h"
#include "services/testing/in_process_cluster.h"

namespace moe {
namespace {

using ::testing::HasSubstr;
using testing::InProcessCluster;
using testing::InProcessClusterOptions;

class RouterServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(Start(InProcessClusterOptions())); }

  void Start(InProcessClusterOptions options) {
    cluster_.reset();
    absl::StatusOr<std::unique_ptr<InProcessCluster>> c =
        InProcessCluster::Start(std::move(options));
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = *std::move(c);
    stub_ = moe::v1::Router::NewStub(
        grpc::CreateChannel(cluster_->router_address(), grpc::InsecureChannelCredentials()));
  }

  // Hidden states for `n` tokens: fixed, so every test sees the same routing.
  torch::Tensor Hidden(int64_t n) {
    torch::manual_seed(11);
    return torch::randn({n, cluster_->config().d_model});
  }

  grpc::Status Route(int layer, const torch::Tensor& hidden, moe::v1::RouteResponse* resp) {
    moe::v1::RouteRequest req;
    req.set_layer(layer);
    EncodeTensor(hidden, req.mutable_hidden());
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(10));
    return stub_->Route(&ctx, req, resp);
  }

  grpc::Status ReportFailure(const std::string& pool) {
    moe::v1::ReportPoolFailureRequest req;
    req.set_pool(pool);
    req.set_error("test");
    moe::v1::ReportPoolFailureResponse resp;
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(10));
    return stub_->ReportPoolFailure(&ctx, req, &resp);
  }

  moe::v1::Placement Placement() {
    moe::v1::Placement p;
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(10));
    EXPECT_TRUE(stub_->GetPlacement(&ctx, moe::v1::GetPlacementRequest(), &p).ok());
    return p;
  }

  std::unique_ptr<InProcessCluster> cluster_;
  std::unique_ptr<moe::v1::Router::Stub> stub_;
};

TEST_F(RouterServiceTest, RouteAnswersWithTheGateOfTheLayerAsked) {
  const ModelConfig& config = cluster_->config();
  const torch::Tensor x = Hidden(16);
  for (int layer = 0; layer < config.n_layers; ++layer) {
    moe::v1::RouteResponse resp;
    ASSERT_TRUE(Route(layer, x, &resp).ok());
    std::vector<torch::Tensor> gates = *GateWeights(config, cluster_->checkpoint().state);
    c10::InferenceMode guard;
    const RoutingResult want =
        RouteTokens(x, PackedGate(gates[layer]), DefaultPolicy(config), layer, {});
    ASSERT_EQ(resp.expert_ids_size(), want.expert_ids.numel());
    EXPECT_EQ(resp.layer(), layer);
    EXPECT_EQ(resp.top_k(), config.top_k);
    for (int i = 0; i < resp.expert_ids_size(); ++i) {
      EXPECT_EQ(resp.expert_ids(i), want.expert_ids.data_ptr<int64_t>()[i]) << i;
      EXPECT_EQ(resp.weights(i), want.weights.data_ptr<float>()[i]) << i;  // bit-equal
    }
  }
}

TEST_F(RouterServiceTest, AllRowsOfAnExpertGoToOneHostOfIt) {
  const ModelConfig& config = cluster_->config();
  const torch::Tensor x = Hidden(32);
  for (int call = 0; call < 4; ++call) {
    moe::v1::RouteResponse resp;
    ASSERT_TRUE(Route(0, x, &resp).ok());
    ASSERT_EQ(resp.pools_size(), 2);
    ASSERT_EQ(resp.pool_index_size(), resp.expert_ids_size());
    std::map<int, std::set<int>> pools_of;  // base expert -> pool indices in this call
    for (int i = 0; i < resp.expert_ids_size(); ++i) {
      pools_of[resp.expert_ids(i) / config.granularity].insert(resp.pool_index(i));
    }
    for (const auto& [expert, pools] : pools_of) {
      EXPECT_EQ(pools.size(), 1u) << "expert " << expert << " split over pools";
      if (expert < 2) {
        EXPECT_EQ(*pools.begin(), 0) << "only pool-a hosts expert " << expert;
      }
    }
    ASSERT_EQ(resp.shared_pool_index_size(), config.n_shared);
    EXPECT_EQ(resp.shared_pool_index(0), 0) << "only pool-a hosts the shared expert";
  }
}

TEST_F(RouterServiceTest, FullReplicasShareTheLoadEvenly) {
  InProcessClusterOptions options;
  options.pools = {{"pool-a", {0, 1, 2, 3}, true}, {"pool-b", {0, 1, 2, 3}, true}};
  Start(std::move(options));
  const ModelConfig& config = cluster_->config();
  const torch::Tensor x = Hidden(32);
  std::set<int> used;
  int64_t largest = 0;  // the most tokens one expert (or the shared one) took in one call
  for (int call = 0; call < 8; ++call) {
    moe::v1::RouteResponse resp;
    ASSERT_TRUE(Route(call % 2, x, &resp).ok());
    std::map<int, int64_t> tokens;
    for (int i = 0; i < resp.expert_ids_size(); ++i) {
      used.insert(resp.pool_index(i));
      ++tokens[resp.expert_ids(i) / config.granularity];
    }
    for (const auto& [expert, n] : tokens) largest = std::max(largest, n);
  }
  largest = std::max<int64_t>(largest, 32);
  EXPECT_EQ(used, (std::set<int>{0, 1}));
  const moe::v1::Placement p = Placement();
  // Least-loaded choice keeps the two within one assignment of each other.
  EXPECT_LE(std::abs(p.pools(0).outstanding_tokens() - p.pools(1).outstanding_tokens()),
            largest + 1);
  EXPECT_GT(p.pools(0).outstanding_tokens(), 0);
  EXPECT_GT(p.pools(1).outstanding_tokens(), 0);
  // Each replica's tokens, and per layer they add up to what the pools computed.
  for (int l = 0; l < config.n_layers; ++l) {
    double replicas = 0, pools = 0;
    for (const moe::v1::PoolInfo& pool : p.pools()) {
      const moe::v1::HostedExperts& h = pool.hosts(l);
      ASSERT_EQ(h.expert_tokens_size(), h.experts_size());
      ASSERT_EQ(h.shared_tokens_size(), h.shared_size());
      for (double t : h.expert_tokens()) replicas += t;
      for (double t : h.shared_tokens()) replicas += t;
      pools += pool.layer_tokens(l);
    }
    EXPECT_GT(pools, 0);
    EXPECT_NEAR(replicas, pools, 1e-3 * pools) << "layer " << l;
  }
}

TEST_F(RouterServiceTest, AReportedFailureMovesWorkToReplicasAndNamesExpertsLeftWithout) {
  const torch::Tensor x = Hidden(64);  // enough tokens to reach every expert
  ASSERT_TRUE(ReportFailure("pool-b").ok());
  moe::v1::RouteResponse resp;
  ASSERT_TRUE(Route(1, x, &resp).ok());
  for (int i = 0; i < resp.pool_index_size(); ++i) EXPECT_EQ(resp.pool_index(i), 0);
  EXPECT_FALSE(Placement().pools(1).healthy());

  ASSERT_TRUE(ReportFailure("pool-a").ok());
  const grpc::Status st = Route(1, x, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(st.error_message(),
              HasSubstr("layer 1 expert 0: no healthy pool (hosted by pool-a)"));

  const grpc::Status unknown = ReportFailure("pool-z");
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(unknown.error_message(), HasSubstr("pool: pool \"pool-z\": not in the placement"));
}

TEST_F(RouterServiceTest, HealthChecksMarkAStoppedPoolUnhealthyAndItsExpertsMoveAway) {
  InProcessClusterOptions options;
  options.router.control.health_interval = absl::Milliseconds(20);
  options.router.control.health_timeout = absl::Milliseconds(200);
  Start(std::move(options));
  cluster_->router().StartHealthChecks();
  cluster_->StopPool(1);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (Placement().pools(1).healthy() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  const moe::v1::Placement p = Placement();
  EXPECT_FALSE(p.pools(1).healthy());
  EXPECT_TRUE(p.pools(0).healthy());
  EXPECT_EQ(p.pools(0).device(), "cpu");  // from Describe, once pool-a answered
  moe::v1::RouteResponse resp;
  ASSERT_TRUE(Route(0, Hidden(64), &resp).ok());
  for (int i = 0; i < resp.pool_index_size(); ++i) EXPECT_EQ(resp.pool_index(i), 0);
}

TEST_F(RouterServiceTest, PlacementListsEveryPoolWithWhatItHosts) {
  const ModelConfig& config = cluster_->config();
  const moe::v1::Placement p = Placement();
  ASSERT_EQ(p.pools_size(), 2);
  EXPECT_EQ(p.pools(0).name(), "pool-a");
  EXPECT_EQ(p.pools(1).address(), cluster_->pool_address(1));
  ASSERT_EQ(p.pools(1).hosts_size(), config.n_layers);
  for (const moe::v1::HostedExperts& h : p.pools(1).hosts()) {
    EXPECT_THAT(h.experts(), ::testing::ElementsAre(2, 3));
    EXPECT_EQ(h.shared_size(), 0);
  }
  EXPECT_EQ(p.pools(0).hosts(0).shared_size(), config.n_shared);
}

TEST_F(RouterServiceTest, BadRequestsAreRefusedNamingTheField) {
  moe::v1::RouteResponse resp;
  grpc::Status st = Route(-1, Hidden(2), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("layer: must be in [0, 2), got -1"));

  st = Route(0, torch::randn({2, 5}), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("hidden"));

  moe::v1::RouteRequest req;
  EncodeTensor(Hidden(3), req.mutable_hidden());
  req.add_token_keys(1);
  grpc::ClientContext ctx;
  st = stub_->Route(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("token_keys: 1 keys for 3 tokens"));

  moe::v1::SetPolicyRequest set;
  set.mutable_policy()->set_top_k(99);
  moe::v1::RoutingPolicy now;
  grpc::ClientContext set_ctx;
  st = stub_->SetPolicy(&set_ctx, set, &now);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("policy.top_k"));
}

TEST_F(RouterServiceTest, SetPolicyChangesTheTopKOfLaterRoutes) {
  moe::v1::SetPolicyRequest set;
  set.mutable_policy()->set_top_k(1);
  moe::v1::RoutingPolicy now;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->SetPolicy(&ctx, set, &now).ok());
  EXPECT_EQ(now.top_k(), 1);
  moe::v1::RouteResponse resp;
  ASSERT_TRUE(Route(0, Hidden(4), &resp).ok());
  EXPECT_EQ(resp.top_k(), 1);
  EXPECT_EQ(resp.expert_ids_size(), 4);
}

TEST_F(RouterServiceTest, RouteStreamAnswersEachMessageInOrderAndEndsOnABadOne) {
  grpc::ClientContext ctx;
  auto stream = stub_->RouteStream(&ctx);
  const torch::Tensor x = Hidden(4);
  for (int layer : {1, 0, 1}) {
    moe::v1::RouteRequest req;
    req.set_layer(layer);
    EncodeTensor(x, req.mutable_hidden());
    ASSERT_TRUE(stream->Write(req));
    moe::v1::RouteResponse resp;
    ASSERT_TRUE(stream->Read(&resp));
    EXPECT_EQ(resp.layer(), layer);
  }
  moe::v1::RouteRequest bad;
  bad.set_layer(7);
  ASSERT_TRUE(stream->Write(bad));
  moe::v1::RouteResponse resp;
  EXPECT_FALSE(stream->Read(&resp));
  const grpc::Status st = stream->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("layer: must be in [0, 2), got 7"));
}

}  // namespace
}  // namespace moe
