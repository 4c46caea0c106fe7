// moectl's remote commands against an in-process cluster (router, pools, orchestrator on
// loopback ports): what they print, and that failures come back as the service's status.
#include "clients/moectl/remote.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/synchronization/notification.h"
#include "clients/moectl/embedded.h"
#include "nlohmann/json.hpp"
#include "services/common/server.h"
#include "services/testing/in_process_cluster.h"

namespace moe::cli {
namespace {

using ::testing::HasSubstr;
using testing::InProcessCluster;
using testing::InProcessClusterOptions;

class RemoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InProcessClusterOptions options;
    options.orchestrator = true;
    absl::StatusOr<std::unique_ptr<InProcessCluster>> c =
        InProcessCluster::Start(std::move(options));
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = *std::move(c);
  }

  GenerateArgs Greedy(const std::string& prompt) {
    GenerateArgs a;
    a.prompt = prompt;
    a.max_tokens = 6;
    a.temperature = 0;
    a.seed = 1;
    a.deadline_s = 60;
    return a;
  }

  std::unique_ptr<InProcessCluster> cluster_;
};

TEST_F(RemoteTest, GenerateRemotePrintsWhatTheEmbeddedRunPrints) {
  Printer remote_printer(/*routing=*/false);
  ::testing::internal::CaptureStdout();
  absl::Status s = GenerateRemote(cluster_->orchestrator_address(), Greedy("abc"), remote_printer);
  const std::string remote = ::testing::internal::GetCapturedStdout();
  ASSERT_TRUE(s.ok()) << s;

  Printer embedded_printer(/*routing=*/false);
  ::testing::internal::CaptureStdout();
  s = GenerateEmbedded(cluster_->source(), Greedy("abc"), /*threads=*/1, embedded_printer);
  const std::string embedded = ::testing::internal::GetCapturedStdout();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(remote, embedded);
  EXPECT_EQ(remote.rfind("abc", 0), 0u) << "the prompt is printed first: " << remote;
}

// Remote and embedded output of the same request, printed.
std::pair<std::string, std::string> BothWays(InProcessCluster& cluster, const GenerateArgs& args) {
  Printer remote_printer(/*routing=*/false);
  ::testing::internal::CaptureStdout();
  absl::Status s = GenerateRemote(cluster.orchestrator_address(), args, remote_printer);
  const std::string remote = ::testing::internal::GetCapturedStdout();
  EXPECT_TRUE(s.ok()) << s;
  Printer embedded_printer(/*routing=*/false);
  ::testing::internal::CaptureStdout();
  s = GenerateEmbedded(cluster.source(), args, /*threads=*/1, embedded_printer);
  const std::string embedded = ::testing::internal::GetCapturedStdout();
  EXPECT_TRUE(s.ok()) << s;
  return {remote, embedded};
}

TEST_F(RemoteTest, SamplingControlsPrintTheSameRemoteAndEmbedded) {
  GenerateArgs args = Greedy("abc");
  args.max_tokens = 10;
  args.repetition_penalty = 1.3f;
  args.frequency_penalty = 0.5f;
  args.presence_penalty = -0.25f;
  args.logprobs = 2;
  auto [remote, embedded] = BothWays(*cluster_, args);
  EXPECT_EQ(remote, embedded);
  EXPECT_THAT(remote, HasSubstr("top alternatives"));
  // A stop sequence taken from the middle of that text ends both runs before it.
  const std::string text = remote.substr(3, remote.find("\ntoken ") - 3);
  ASSERT_GE(text.size(), 4u) << remote;
  size_t at = text.size() / 2;  // two ASCII bytes from the second half, if there are any
  while (at + 2 < text.size() && (text[at] & 0x80 || text[at + 1] & 0x80)) ++at;
  args.stop = {text.substr(std::min(at, text.size() - 2), 2)};
  args.logprobs = -1;
  std::tie(remote, embedded) = BothWays(*cluster_, args);
  EXPECT_EQ(remote, embedded);
  EXPECT_EQ(remote, "abc" + text.substr(0, text.find(args.stop[0])) + "\n");
}

TEST_F(RemoteTest, NCompletionsPrintTheSameRemoteAndEmbedded) {
  GenerateArgs args = Greedy("ab");
  args.temperature = 1.5f;
  args.n = 3;
  auto [remote, embedded] = BothWays(*cluster_, args);
  EXPECT_EQ(remote, embedded);
  EXPECT_THAT(remote, HasSubstr("[2] ab"));
}

TEST_F(RemoteTest, RoutingRowsNameThePoolsThatComputedEachExpert) {
  GenerateArgs args = Greedy("ab");
  args.routing = true;
  Printer printer(/*routing=*/true);
  ::testing::internal::CaptureStdout();
  const absl::Status s = GenerateRemote(cluster_->orchestrator_address(), args, printer);
  const std::string out = ::testing::internal::GetCapturedStdout();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(out, HasSubstr("pool-a"));
  EXPECT_THAT(out, HasSubstr("text: "));
}

TEST_F(RemoteTest, InfoPlacementAndPolicyPrintJson) {
  absl::StatusOr<std::string> info = ModelInfoJson(cluster_->orchestrator_address());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(nlohmann::json::parse(*info)["n_layers"], cluster_->config().n_layers);

  absl::StatusOr<std::string> placement = PlacementJson(cluster_->orchestrator_address());
  ASSERT_TRUE(placement.ok()) << placement.status();
  EXPECT_EQ(nlohmann::json::parse(*placement)["pools"][1]["name"], "pool-b");

  absl::StatusOr<std::string> policy = Policy(cluster_->router_address(), 1, -1, -1);
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(nlohmann::json::parse(*policy)["top_k"], 1);
  absl::StatusOr<std::string> read = Policy(cluster_->router_address(), 0, -1, -1);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(nlohmann::json::parse(*read)["top_k"], 1) << "reading must not change it";
}

TEST_F(RemoteTest, FailuresComeBackAsTheServicesStatus) {
  absl::StatusOr<std::string> policy = Policy(cluster_->router_address(), 99, -1, -1);
  ASSERT_FALSE(policy.ok());
  EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(policy.status().message()), HasSubstr("policy.top_k"));

  GenerateArgs args = Greedy("abc");
  args.max_tokens = 0;
  ::testing::internal::CaptureStdout();
  Printer printer(false);
  const absl::Status s = GenerateRemote(cluster_->orchestrator_address(), args, printer);
  ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("max_tokens"));

  const absl::Status c = CompleteRemote(cluster_->orchestrator_address(), args);
  EXPECT_EQ(c.code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RemoteTest, TheWrongServiceIsNamedWithTheOneTheCommandNeeds) {
  // The router owns the placement: asked there, it answers too.
  absl::StatusOr<std::string> placement = PlacementJson(cluster_->router_address());
  ASSERT_TRUE(placement.ok()) << placement.status();
  EXPECT_EQ(nlohmann::json::parse(*placement)["pools"][0]["name"], "pool-a");

  absl::StatusOr<std::string> info = ModelInfoJson(cluster_->router_address());
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(info.status().message()),
              HasSubstr("is the router; moectl info needs the orchestrator"));

  absl::StatusOr<std::string> drain =
      DrainPool(cluster_->orchestrator_address(), "pool-b", /*deadline_s=*/10);
  ASSERT_FALSE(drain.ok());
  EXPECT_THAT(std::string(drain.status().message()),
              HasSubstr("is the orchestrator; moectl drain needs the router"));

  absl::StatusOr<std::string> rebalance = RebalanceNow(cluster_->pool_address(0), 10);
  ASSERT_FALSE(rebalance.ok());
  EXPECT_THAT(std::string(rebalance.status().message()),
              HasSubstr("is an expert pool; moectl rebalance needs the router"));

  GenerateArgs args = Greedy("abc");
  ::testing::internal::CaptureStdout();
  Printer printer(false);
  const absl::Status g = GenerateRemote(cluster_->router_address(), args, printer);
  ::testing::internal::GetCapturedStdout();
  EXPECT_THAT(std::string(g.message()), HasSubstr("moectl generate needs the orchestrator"));
}

TEST(WaitHealthyTest, WaitsForServingAndGivesUpNamingTheTargetAndTheLastAnswer) {
  ServiceHost host(ServerOptions{"test", "127.0.0.1:0", ""});
  ASSERT_TRUE(host.Start().ok());
  const std::string target = absl::StrCat("127.0.0.1:", host.port());
  const absl::Status early = WaitHealthy(target, 0.3);
  EXPECT_EQ(early.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(early.message()), HasSubstr(target));
  EXPECT_THAT(std::string(early.message()), HasSubstr("NOT_SERVING"));

  std::thread later([&host] {
    absl::SleepFor(absl::Milliseconds(300));
    host.SetServing(true);
  });
  EXPECT_TRUE(WaitHealthy(target, 10).ok());
  later.join();
}

}  // namespace
}  // namespace moe::cli
