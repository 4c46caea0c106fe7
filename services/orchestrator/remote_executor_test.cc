// The remote MoE executor against an in-process router and pools: the same layer output as the
// in-process executor, bit for bit, over streams (with speculative Forward) and unary calls,
// whether the pools' work was predicted right, wrong or not at all; layers under way together;
// failover to a replica when a pool dies; and errors that name what failed.
#include "services/orchestrator/remote_executor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "models/moe_executor.h"
#include "models/routing.h"
#include "services/testing/in_process_cluster.h"

namespace moe {
namespace {

using ::testing::HasSubstr;
using testing::InProcessCluster;
using testing::InProcessClusterOptions;

class RemoteExecutorTest : public ::testing::TestWithParam<bool> {
 protected:
  void Start(InProcessClusterOptions options) {
    absl::StatusOr<std::unique_ptr<InProcessCluster>> c =
        InProcessCluster::Start(std::move(options));
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = *std::move(c);
    RemoteExecutorOptions remote;
    remote.streams = GetParam();
    remote.forward_deadline = absl::Seconds(5);
    if (GetParam()) {  // streams: with speculative Forward
      absl::StatusOr<std::vector<torch::Tensor>> gates =
          GateWeights(cluster_->config(), cluster_->checkpoint().state);
      ASSERT_TRUE(gates.ok()) << gates.status();
      remote.gates = *std::move(gates);
    }
    remote_ = std::make_unique<RemoteMoeExecutor>(cluster_->config(), cluster_->cluster(), remote,
                                                  registry_, &logger_);
    absl::StatusOr<std::unique_ptr<LocalMoeExecutor>> local =
        LocalMoeExecutor::Create(cluster_->config(), cluster_->checkpoint().state);
    ASSERT_TRUE(local.ok()) << local.status();
    local_ = *std::move(local);
    torch::manual_seed(3);
    x_ = torch::randn({9, cluster_->config().d_model});
  }

  // Remote and local outputs of one layer are the same numbers, not merely close.
  void ExpectSameAsLocal(int layer) {
    c10::InferenceMode guard;
    ExpectSameAsLocal(layer, remote_->Forward(layer, x_, {}, /*want_probs=*/true));
  }
  void ExpectSameAsLocal(int layer, absl::StatusOr<MoeLayerOutput> got) {
    c10::InferenceMode guard;
    ASSERT_TRUE(got.ok()) << got.status();
    absl::StatusOr<MoeLayerOutput> want = local_->Forward(layer, x_, {}, /*want_probs=*/true);
    ASSERT_TRUE(want.ok()) << want.status();
    EXPECT_TRUE(torch::equal(got->output, want->output)) << "layer " << layer;
    EXPECT_EQ(got->expert_ids, want->expert_ids);
    EXPECT_EQ(got->weights, want->weights);
    EXPECT_EQ(got->probs, want->probs);
    EXPECT_EQ(got->pool_index.size(), got->expert_ids.size());
  }

  prometheus::Registry registry_;
  Logger logger_{"test"};
  std::unique_ptr<InProcessCluster> cluster_;
  std::unique_ptr<RemoteMoeExecutor> remote_;
  std::unique_ptr<LocalMoeExecutor> local_;
  torch::Tensor x_;
};

TEST_P(RemoteExecutorTest, LayerOutputIsBitIdenticalToTheInProcessExecutor) {
  Start(InProcessClusterOptions());
  for (int round = 0; round < 2; ++round) {  // the second round reuses the link's streams
    for (int layer = 0; layer < cluster_->config().n_layers; ++layer) ExpectSameAsLocal(layer);
  }
}

TEST_P(RemoteExecutorTest, ADeadPoolIsReportedAndItsExpertsServedByTheirReplica) {
  InProcessClusterOptions options;
  options.pools = {{"pool-a", {0, 1, 2, 3}, true}, {"pool-b", {0, 1, 2, 3}, true}};
  Start(std::move(options));
  ExpectSameAsLocal(0);
  cluster_->StopPool(1);
  ExpectSameAsLocal(0);
  ExpectSameAsLocal(1);
  moe::v1::Placement placement;
  grpc::ClientContext ctx;
  ASSERT_TRUE(
      remote_->router().GetPlacement(&ctx, moe::v1::GetPlacementRequest(), &placement).ok());
  EXPECT_FALSE(placement.pools(1).healthy()) << "the failure was not reported to the router";
}

TEST_P(RemoteExecutorTest, AnExpertWithNoReplicaLeftFailsUnavailableNamingExpertAndPool) {
  InProcessClusterOptions options;
  options.pools = {{"pool-a", {0, 1}, true}, {"pool-b", {2, 3}, false}};
  Start(std::move(options));
  cluster_->StopPool(1);
  c10::InferenceMode guard;
  absl::StatusOr<MoeLayerOutput> out = remote_->Forward(0, x_, {}, false);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("hosted by pool-b"));
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("layer 0 expert "));
}

TEST_P(RemoteExecutorTest, ARouterThatIsGoneFailsNamingTheRouter) {
  Start(InProcessClusterOptions());
  cluster_->StopRouter();
  c10::InferenceMode guard;
  absl::StatusOr<MoeLayerOutput> out = remote_->Forward(0, x_, {}, false);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(out.status().message()), ::testing::StartsWith("router: "));
}

TEST_P(RemoteExecutorTest, PredictedWorkIsKeptOnlyWhenTheRoutersAnswerConfirmsIt) {
  Start(InProcessClusterOptions());
  if (!GetParam()) {  // unary calls: Route, then Forward, every time; nothing is predicted
    ExpectSameAsLocal(0);
    ExpectSameAsLocal(0);
    EXPECT_EQ(remote_->predicted_layers(), 0);
    EXPECT_EQ(remote_->unpredicted_layers(), 0);
    return;
  }
  ExpectSameAsLocal(0);  // nothing known yet: Route, then Forward
  EXPECT_EQ(remote_->predicted_layers() + remote_->unpredicted_layers(), 1);
  ExpectSameAsLocal(0);  // the same tokens, the same placement: every pool's work predicted
  EXPECT_EQ(remote_->predicted_layers(), 1);
  // A new policy at the router: the prediction (under the old one) is wrong, and the answer wins.
  moe::v1::SetPolicyRequest req;
  req.mutable_policy()->set_top_k(1);
  moe::v1::RoutingPolicy set;
  grpc::ClientContext ctx;
  ASSERT_TRUE(remote_->router().SetPolicy(&ctx, req, &set).ok());
  RoutingPolicy policy = local_->policy();
  policy.top_k = 1;
  ASSERT_TRUE(local_->SetPolicy(policy).ok());
  const int64_t missed = remote_->unpredicted_layers();
  ExpectSameAsLocal(0);
  EXPECT_EQ(remote_->unpredicted_layers(), missed + 1);
  ExpectSameAsLocal(0);  // learned from the answer
  EXPECT_EQ(remote_->predicted_layers(), 2);
}

TEST_P(RemoteExecutorTest, LayersUnderWayTogetherEachGetTheirOwnExactOutput) {
  Start(InProcessClusterOptions());
  c10::InferenceMode guard;
  torch::Tensor y = torch::randn({5, cluster_->config().d_model});
  const int last = cluster_->config().n_layers - 1;
  for (int round = 0; round < 2; ++round) {
    std::unique_ptr<PendingMoeLayer> a = remote_->Begin(0, x_, {}, true);
    std::unique_ptr<PendingMoeLayer> b = remote_->Begin(1, y, {}, true);
    std::unique_ptr<PendingMoeLayer> c = remote_->Begin(last, x_, {}, true);
    absl::StatusOr<MoeLayerOutput> got_b = b->Wait();
    ExpectSameAsLocal(0, a->Wait());
    ExpectSameAsLocal(last, c->Wait());
    ASSERT_TRUE(got_b.ok()) << got_b.status();
    absl::StatusOr<MoeLayerOutput> want_b = local_->Forward(1, y, {}, true);
    ASSERT_TRUE(want_b.ok());
    EXPECT_TRUE(torch::equal(got_b->output, want_b->output));
  }
  // One begun and never waited for: its destruction waits, and the executor stays usable.
  remote_->Begin(0, x_, {}, false).reset();
  ExpectSameAsLocal(1);
  // A layer out of range is refused naming it, begun or called.
  EXPECT_THAT(std::string(remote_->Begin(last + 1, x_, {}, false)->Wait().status().message()),
              HasSubstr("layer: must be in"));
}

INSTANTIATE_TEST_SUITE_P(StreamsAndUnary, RemoteExecutorTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Streams" : "Unary";
                         });

}  // namespace
}  // namespace moe
