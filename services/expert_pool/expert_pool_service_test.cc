// An expert pool in-process on a loopback port: what it computes (the same numbers as the model
// library's experts), what it refuses and how, Describe, its metrics, and ForwardStream's
// shutdown rule, through real gRPC calls.
#include "services/expert_pool/expert_pool_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <atomic>
#include <thread>

#include "services/common/deadline.h"
#include "services/common/tensor_codec.h"
#include "services/testing/in_process_cluster.h"

namespace moe {
namespace {

using ::testing::HasSubstr;
using testing::InProcessCluster;
using testing::InProcessClusterOptions;

class ExpertPoolServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<InProcessCluster>> c =
        InProcessCluster::Start(InProcessClusterOptions());
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = *std::move(c);
    // pool-b: base experts 2 and 3 of every layer, no shared expert.
    stub_ = moe::v1::ExpertPool::NewStub(
        grpc::CreateChannel(cluster_->pool_address(1), grpc::InsecureChannelCredentials()));
    torch::manual_seed(5);
    x_ = torch::randn({6, cluster_->config().d_model});
  }

  moe::v1::ForwardRequest Request(int layer, std::vector<std::pair<int, std::vector<int>>> work) {
    moe::v1::ForwardRequest req;
    req.set_layer(layer);
    EncodeTensor(x_, req.mutable_hidden());
    for (const auto& [expert, rows] : work) {
      moe::v1::ExpertWork* w = req.add_work();
      w->set_expert(expert);
      w->mutable_rows()->Add(rows.begin(), rows.end());
    }
    return req;
  }

  grpc::Status Forward(const moe::v1::ForwardRequest& req, moe::v1::ForwardResponse* resp) {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(10));
    return stub_->Forward(&ctx, req, resp);
  }

  std::unique_ptr<InProcessCluster> cluster_;
  std::unique_ptr<moe::v1::ExpertPool::Stub> stub_;
  torch::Tensor x_;
};

TEST_F(ExpertPoolServiceTest, ForwardComputesWhatTheModelLibraryComputesBitForBit) {
  const ModelConfig& config = cluster_->config();
  const int m = config.granularity;
  // Micro-experts of base experts 2 and 3, on different rows, in the order given.
  const std::vector<std::pair<int, std::vector<int>>> work = {
      {3 * m + 1, {5, 0, 2}}, {2 * m, {1}}, {2 * m + 1, {0, 1, 2, 3, 4, 5}}};
  moe::v1::ForwardResponse resp;
  ASSERT_TRUE(Forward(Request(1, work), &resp).ok());
  EXPECT_EQ(resp.pool(), "pool-b");
  absl::StatusOr<torch::Tensor> out = DecodeTensor(resp.output(), "output", {{10, -1}, true});
  ASSERT_TRUE(out.ok()) << out.status();

  absl::StatusOr<ExpertBank> all = ExpertBank::Build(
      config, cluster_->checkpoint().state, [](int, int, bool) { return true; }, torch::kCPU);
  ASSERT_TRUE(all.ok());
  c10::InferenceMode guard;
  std::vector<torch::Tensor> want;
  for (const auto& [expert, rows] : work) {
    const std::vector<int32_t> r(rows.begin(), rows.end());
    want.push_back(all->Run(1, expert, /*shared=*/false, x_, r));
  }
  EXPECT_TRUE(torch::equal(*out, torch::cat(want, 0)));
}

TEST_F(ExpertPoolServiceTest, RefusesWorkItDoesNotHostOrCannotDoNamingTheField) {
  const int m = cluster_->config().granularity;
  moe::v1::ForwardResponse resp;
  grpc::Status st = Forward(Request(0, {{2 * m, {0}}, {1 * m, {0}}}), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("layer 0 expert 1: not hosted by pool pool-b"));

  st = Forward(Request(0, {{2 * m, {0, 6}}}), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("work[0].rows: 6 out of range [0, 6)"));

  st = Forward(Request(0, {{2 * m, {0}}, {99, {0}}}), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("work[1].expert: 99 out of range"));

  moe::v1::ForwardRequest shared = Request(0, {});
  moe::v1::ExpertWork* w = shared.add_work();
  w->set_expert(0);
  w->set_shared(true);
  st = Forward(shared, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("layer 0 shared expert 0: not hosted by pool pool-b"));

  st = Forward(Request(5, {}), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("layer: must be in [0, 2), got 5"));

  moe::v1::ForwardRequest nan = Request(0, {{2 * m, {0}}});
  x_[0][0] = std::nanf("");
  EncodeTensor(x_, nan.mutable_hidden());
  st = Forward(nan, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("hidden"));
}

TEST_F(ExpertPoolServiceTest, DescribeSaysWhatThePoolHostsAndRunsOn) {
  moe::v1::DescribeResponse d;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Describe(&ctx, moe::v1::DescribeRequest(), &d).ok());
  EXPECT_EQ(d.pool(), "pool-b");
  EXPECT_EQ(d.device(), "cpu");
  EXPECT_EQ(d.model_id(), ModelId(cluster_->config()));
  ASSERT_EQ(d.hosted_size(), cluster_->config().n_layers);
  EXPECT_THAT(d.hosted(1).experts(), ::testing::ElementsAre(2, 3));
}

TEST_F(ExpertPoolServiceTest, CountsTheTokensEachExpertComputed) {
  const int m = cluster_->config().granularity;
  moe::v1::ForwardResponse resp;
  ASSERT_TRUE(Forward(Request(1, {{3 * m, {0, 1, 2}}, {3 * m + 1, {4}}}), &resp).ok());
  const std::string text =
      prometheus::TextSerializer().Serialize(cluster_->pool_registry(1).Collect());
  EXPECT_THAT(
      text, HasSubstr(R"(moe_expert_tokens_computed_total{expert="3",layer="1",pool="pool-b"} 4)"));
  EXPECT_THAT(
      text, HasSubstr(R"(moe_expert_tokens_computed_total{expert="2",layer="1",pool="pool-b"} 0)"));
}

TEST_F(ExpertPoolServiceTest, ForwardStreamAnswersInOrderAndCloseEndsItAndRefusesNewOnes) {
  const int m = cluster_->config().granularity;
  grpc::ClientContext ctx;
  auto stream = stub_->ForwardStream(&ctx);
  for (int rows : {1, 3, 2}) {
    std::vector<int> r;
    for (int i = 0; i < rows; ++i) r.push_back(i);
    ASSERT_TRUE(stream->Write(Request(0, {{2 * m, r}})));
    moe::v1::ForwardResponse resp;
    ASSERT_TRUE(stream->Read(&resp));
    EXPECT_EQ(DecodeTensor(resp.output(), "output", {{-1, -1}, true})->size(0), rows);
  }
  cluster_->pool(1).CloseStreams();
  moe::v1::ForwardResponse resp;
  EXPECT_FALSE(stream->Read(&resp));
  EXPECT_TRUE(stream->Finish().ok());  // an idle stream ends cleanly

  grpc::ClientContext late_ctx;
  auto late = stub_->ForwardStream(&late_ctx);
  EXPECT_FALSE(late->Read(&resp));
  const grpc::Status st = late->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(st.error_message(), HasSubstr("shutting down"));
}

moe::v1::ChangeExpertsRequest Change(int layer, std::vector<int> experts, std::vector<int> shared) {
  moe::v1::ChangeExpertsRequest req;
  moe::v1::HostedExperts* h = req.add_experts();
  h->set_layer(layer);
  h->mutable_experts()->Add(experts.begin(), experts.end());
  h->mutable_shared()->Add(shared.begin(), shared.end());
  return req;
}

TEST_F(ExpertPoolServiceTest, LoadedExpertsComputeAndDroppedOnesAreRefused) {
  const int m = cluster_->config().granularity;
  moe::v1::DescribeResponse d;
  {
    grpc::ClientContext ctx;
    const grpc::Status st = stub_->LoadExperts(&ctx, Change(0, {0}, {0}), &d);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  EXPECT_THAT(d.hosted(0).experts(), ::testing::ElementsAre(0, 2, 3));
  EXPECT_THAT(d.hosted(0).shared(), ::testing::ElementsAre(0));
  EXPECT_THAT(d.hosted(1).experts(), ::testing::ElementsAre(2, 3)) << "other layers unchanged";
  moe::v1::ForwardResponse resp;
  ASSERT_TRUE(Forward(Request(0, {{0 * m + 1, {0, 1}}}), &resp).ok());

  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->DropExperts(&ctx, Change(0, {0, 2}, {}), &d).ok());
  }
  EXPECT_THAT(d.hosted(0).experts(), ::testing::ElementsAre(3));
  const grpc::Status st = Forward(Request(0, {{2 * m, {0}}}), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("layer 0 expert 2: not hosted by pool pool-b"));
  const std::string text =
      prometheus::TextSerializer().Serialize(cluster_->pool_registry(1).Collect());
  EXPECT_THAT(text, HasSubstr(R"(moe_experts_loaded_total{pool="pool-b"} 2)"));
  EXPECT_THAT(text, HasSubstr(R"(moe_experts_dropped_total{pool="pool-b"} 2)"));
}

TEST_F(ExpertPoolServiceTest, ChangesBeyondTheSlotsOrOutsideTheModelAreRefusedAndChangeNothing) {
  testing::InProcessClusterOptions options;
  options.pools = {{"pool-a", {0, 1, 2, 3}, true, 0}, {"pool-b", {2, 3}, false, 3}};
  absl::StatusOr<std::unique_ptr<InProcessCluster>> c = InProcessCluster::Start(options);
  ASSERT_TRUE(c.ok()) << c.status();
  cluster_ = *std::move(c);
  stub_ = moe::v1::ExpertPool::NewStub(
      grpc::CreateChannel(cluster_->pool_address(1), grpc::InsecureChannelCredentials()));
  moe::v1::DescribeResponse d;
  grpc::ClientContext ctx;
  grpc::Status st = stub_->LoadExperts(&ctx, Change(1, {0}, {0}), &d);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(st.error_message(),
              HasSubstr("layer 1: 4 experts would exceed pool pool-b's 3 expert slots"));
  grpc::ClientContext ctx2;
  st = stub_->LoadExperts(&ctx2, Change(0, {4}, {}), &d);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(),
              HasSubstr("experts[0].experts: layer 0 expert 4 is not an expert"));
  grpc::ClientContext ctx3;
  st = stub_->LoadExperts(&ctx3, Change(0, {}, {1}), &d);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("shared expert 1"));
  grpc::ClientContext ctx4;
  ASSERT_TRUE(stub_->Describe(&ctx4, moe::v1::DescribeRequest(), &d).ok());
  EXPECT_THAT(d.hosted(1).experts(), ::testing::ElementsAre(2, 3));
  EXPECT_EQ(d.hosted(1).shared_size(), 0);
  EXPECT_EQ(d.expert_slots(), 3);
}

// A drop waits for calls that are computing on the dropped experts: a Forward that took the bank
// before the drop finishes with the right numbers.
TEST_F(ExpertPoolServiceTest, ADropLetsRunningCallsFinish) {
  const int m = cluster_->config().granularity;
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, refused{0}, other{0};
  std::thread forwarder([&] {
    while (!stop.load()) {
      moe::v1::ForwardResponse resp;
      const grpc::Status st = Forward(Request(1, {{3 * m, {0, 1, 2, 3, 4, 5}}}), &resp);
      if (st.ok()) {
        ++ok;
      } else if (st.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
        ++refused;
      } else {
        ++other;
      }
    }
  });
  absl::SleepFor(absl::Milliseconds(50));
  moe::v1::DescribeResponse d;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->DropExperts(&ctx, Change(1, {3}, {}), &d).ok());
  absl::SleepFor(absl::Milliseconds(50));
  stop = true;
  forwarder.join();
  EXPECT_GT(ok.load(), 0);
  EXPECT_GT(refused.load(), 0);
  EXPECT_EQ(other.load(), 0);
}

}  // namespace
}  // namespace moe
