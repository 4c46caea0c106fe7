#include "services/common/placement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace moe {
namespace {

using ::testing::HasSubstr;

ModelConfig Config() {
  ModelConfig c;
  c.n_layers = 2;
  c.n_experts = 4;
  c.n_shared = 1;
  return c;
}

constexpr char kGood[] = R"({
  "router": {"address": "127.0.0.1:50051"},
  "orchestrator": {"address": "127.0.0.1:50050"},
  "pools": [
    {"name": "a", "address": "127.0.0.1:50061",
     "hosts": [{"layers": "all", "experts": "0-1", "shared": "all"}]},
    {"name": "b", "address": "127.0.0.1:50062",
     "hosts": [{"layers": [0, 1], "experts": [2, 3]}, {"layers": "1", "experts": "0"}]}
  ]})";

TEST(PlacementTest, ParsesRangesListsAndReplicas) {
  absl::StatusOr<ClusterSpec> c = ParseCluster(kGood, Config());
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->pools.size(), 2u);
  EXPECT_EQ(c->router_address, "127.0.0.1:50051");
  EXPECT_EQ(c->Hosts(0, 0, false), (std::vector<int>{0}));
  EXPECT_EQ(c->Hosts(1, 0, false), (std::vector<int>{0, 1}));  // replicated
  EXPECT_EQ(c->Hosts(1, 3, false), (std::vector<int>{1}));
  EXPECT_EQ(c->Hosts(0, 0, true), (std::vector<int>{0}));
  EXPECT_EQ(*c->FindPool("b"), 1);
  EXPECT_THAT(c->FindPool("z").status().message(), HasSubstr("pool \"z\": not in the cluster"));
}

TEST(PlacementTest, ExpertHostedNowhereIsNamed) {
  std::string bad = kGood;
  bad.replace(bad.find("[2, 3]"), 6, "[2]");
  EXPECT_THAT(ParseCluster(bad, Config()).status().message(),
              HasSubstr("layer 0 expert 3: hosted by no pool"));
}

TEST(PlacementTest, SharedExpertHostedNowhereIsNamed) {
  std::string bad = kGood;
  const std::string shared = ", \"shared\": \"all\"";
  bad.replace(bad.find(shared), shared.size(), "");
  EXPECT_THAT(ParseCluster(bad, Config()).status().message(),
              HasSubstr("layer 0 shared expert 0: hosted by no pool"));
}

TEST(PlacementTest, DuplicateAddressesAreRefused) {
  std::string bad = kGood;
  bad.replace(bad.find("50062"), 5, "50061");
  EXPECT_THAT(ParseCluster(bad, Config()).status().message(),
              HasSubstr("address 127.0.0.1:50061 already used by pool \"a\""));
  std::string clash = kGood;
  clash.replace(clash.find("50062"), 5, "50051");
  EXPECT_THAT(ParseCluster(clash, Config()).status().message(), HasSubstr("used by router"));
}

TEST(PlacementTest, OutOfRangeAndMalformedEntriesAreNamed) {
  std::string bad = kGood;
  bad.replace(bad.find("\"0-1\""), 5, "\"0-9\"");
  EXPECT_THAT(ParseCluster(bad, Config()).status().message(),
              HasSubstr("pool \"a\".hosts[0].experts: 4 out of range [0, 4)"));
  EXPECT_THAT(ParseCluster("{", Config()).status().message(), HasSubstr("not a JSON object"));
  EXPECT_THAT(
      ParseCluster(R"({"router": {"address": "nope"}, "pools": []})", Config()).status().message(),
      HasSubstr("router.address"));
  std::string dup = kGood;
  dup.replace(dup.find("\"name\": \"b\""), 11, "\"name\": \"a\"");
  EXPECT_THAT(ParseCluster(dup, Config()).status().message(), HasSubstr("name used twice"));
}

TEST(PlacementTest, NoPoolsIsAnEmptyStartingPlacement) {
  for (const char* text : {R"({"router": {"address": "10.0.0.1:50051"}, "pools": []})",
                           R"({"router": {"address": "10.0.0.1:50051"}})"}) {
    absl::StatusOr<ClusterSpec> c = ParseCluster(text, Config());
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE(c->pools.empty());
    EXPECT_EQ(c->router_address, "10.0.0.1:50051");
  }
  EXPECT_THAT(ParseCluster(R"({"router": {"address": "10.0.0.1:50051"}, "pools": {}})", Config())
                  .status()
                  .message(),
              HasSubstr("pools: expected a list"));
}

}  // namespace
}  // namespace moe
