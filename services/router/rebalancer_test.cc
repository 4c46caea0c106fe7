#include "services/router/rebalancer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace moe {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Name(int k) { return absl::StrCat("layer 0 expert ", k); }

std::vector<std::vector<int>> Hosts(std::initializer_list<std::vector<int>> h) { return h; }

TEST(BalancednessTest, IsMeanOverMaxOfPoolLoadsAndOneWithoutLoad) {
  std::vector<PlannerPool> pools(2);
  EXPECT_DOUBLE_EQ(Balancedness(pools, {3, 1}, Hosts({{0}, {1}})), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(Balancedness(pools, {2, 2}, Hosts({{0}, {1}})), 1.0);
  EXPECT_DOUBLE_EQ(Balancedness(pools, {0, 0}, Hosts({{0}, {0}})), 1.0);
  // A replicated expert's load splits evenly over its replicas.
  EXPECT_DOUBLE_EQ(Balancedness(pools, {4, 0}, Hosts({{0, 1}, {1}})), 1.0);
  // An idle usable pool counts; an unusable one does not.
  pools.push_back({});
  EXPECT_DOUBLE_EQ(Balancedness(pools, {2, 2}, Hosts({{0}, {1}})), 2.0 / 3.0);
  pools[2].usable = false;
  EXPECT_DOUBLE_EQ(Balancedness(pools, {2, 2}, Hosts({{0}, {1}})), 1.0);
}

// The skewed start: pool 0 hosts six of eight experts, pool 1 two; load is even.
TEST(PlanLayerTest, EvensOutASkewedPlacementWithinTheSlots) {
  std::vector<PlannerPool> pools = {{true, 6}, {true, 6}};
  PlannerLayer layer;
  layer.load.assign(8, 100.0);
  layer.current = Hosts({{0}, {0}, {0}, {0}, {0}, {0}, {1}, {1}});
  absl::StatusOr<LayerPlan> plan = PlanLayer(pools, layer, {}, Name);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_DOUBLE_EQ(plan->before, (600.0 + 200.0) / 2 / 600.0);
  EXPECT_TRUE(plan->adopted) << plan->reason;
  EXPECT_GE(plan->after, 0.99);
  int moved = 0;
  for (int k = 0; k < 8; ++k) {
    ASSERT_FALSE(plan->hosts[k].empty());
    moved += plan->hosts[k] != layer.current[k];
  }
  EXPECT_EQ(moved, 2) << "two experts move, the rest stay where they are";
}

TEST(PlanLayerTest, ReplicatesAHotExpertIntoFreeSlots) {
  std::vector<PlannerPool> pools = {{true, 3}, {true, 3}};
  PlannerLayer layer;
  layer.load = {600, 100, 100, 100};
  layer.current = Hosts({{0}, {0}, {1}, {1}});
  absl::StatusOr<LayerPlan> plan = PlanLayer(pools, layer, {}, Name);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->adopted);
  EXPECT_THAT(plan->hosts[0], ElementsAre(0, 1)) << "the hot expert on both pools";
  EXPECT_GT(plan->after, plan->before);
}

TEST(PlanLayerTest, HysteresisKeepsANearlyEvenPlacement) {
  std::vector<PlannerPool> pools = {{true, 0}, {true, 0}};
  PlannerLayer layer;
  layer.load = {100, 98, 100, 99};
  layer.current = Hosts({{0}, {0}, {1}, {1}});
  PlannerOptions options;
  options.min_gain = 0.05;
  absl::StatusOr<LayerPlan> plan = PlanLayer(pools, layer, options, Name);
  ASSERT_TRUE(plan.ok());
  EXPECT_FALSE(plan->adopted) << plan->reason;
  EXPECT_EQ(plan->hosts, layer.current);
  // Run again on its own output: still nothing to do (no flapping).
  layer.current = plan->hosts;
  EXPECT_FALSE(PlanLayer(pools, layer, options, Name)->adopted);
}

TEST(PlanLayerTest, WithoutLoadNothingMovesButADrainedPoolIsEmptied) {
  std::vector<PlannerPool> pools = {{true, 0}, {true, 0}, {true, 0}};
  PlannerLayer layer;
  layer.load.assign(4, 0.0);
  layer.current = Hosts({{0}, {1}, {2}, {2}});
  absl::StatusOr<LayerPlan> same = PlanLayer(pools, layer, {}, Name);
  ASSERT_TRUE(same.ok());
  EXPECT_FALSE(same->adopted);

  pools[2].usable = false;  // draining
  absl::StatusOr<LayerPlan> drained = PlanLayer(pools, layer, {}, Name);
  ASSERT_TRUE(drained.ok());
  EXPECT_TRUE(drained->adopted);
  EXPECT_THAT(drained->reason, HasSubstr("cannot keep it"));
  EXPECT_THAT(drained->hosts[0], ElementsAre(0)) << "unaffected experts stay";
  EXPECT_THAT(drained->hosts[1], ElementsAre(1));
  for (int k = 2; k < 4; ++k) {
    ASSERT_EQ(drained->hosts[k].size(), 1u);
    EXPECT_NE(drained->hosts[k][0], 2);
  }
  EXPECT_NE(drained->hosts[2], drained->hosts[3]) << "spread over the pools left";
}

TEST(PlanLayerTest, RefusesWhenTheUsablePoolsCannotHoldEveryExpert) {
  std::vector<PlannerPool> pools = {{true, 2}, {false, 2}};
  PlannerLayer layer;
  layer.load = {1, 1, 1};
  layer.current = Hosts({{0}, {0}, {1}});
  absl::StatusOr<LayerPlan> plan = PlanLayer(pools, layer, {}, Name);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(plan.status().message()),
              HasSubstr("layer 0 expert 2: no pool can host it"));
}

}  // namespace
}  // namespace moe
