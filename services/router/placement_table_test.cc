#include "services/router/placement_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "models/test_util.h"

namespace moe {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

ClusterSpec TwoPools() {
  ClusterSpec c;
  c.pools.resize(2);
  c.pools[0].name = "a";
  c.pools[0].address = "127.0.0.1:1";
  c.pools[1].name = "b";
  c.pools[1].address = "127.0.0.1:2";
  for (int l = 0; l < 2; ++l) {
    for (int e = 0; e < 4; ++e) c.pools[e < 2 ? 0 : 1].routed.insert({l, e});
    c.pools[0].shared.insert({l, 0});
  }
  return c;
}

TEST(PlacementTableTest, StartsFromTheClusterFileAllReadyAtEpochOne) {
  PlacementTable t(testing::TinyConfig(), TwoPools());
  EXPECT_EQ(t.epoch(), 1u);
  EXPECT_EQ(t.n_keys(), 5);
  std::shared_ptr<const RoutingView> v = t.view();
  EXPECT_THAT(v->names, ElementsAre("a", "b"));
  EXPECT_THAT(v->hosts[1][3], ElementsAre(1));
  EXPECT_THAT(v->hosts[1][4], ElementsAre(0)) << "the shared expert is key n_experts + 0";
  EXPECT_EQ(t.KeyName(1, 4), "layer 1 shared expert 0");
}

TEST(PlacementTableTest, OnlyReadyReplicasAreRoutableAndEveryChangeMovesTheEpoch) {
  PlacementTable t(testing::TinyConfig(), TwoPools());
  std::shared_ptr<const RoutingView> before = t.view();
  EXPECT_EQ(t.Apply({{{0, 0, 1, ReplicaState::kLoading}}}), 2u);
  EXPECT_THAT(t.view()->hosts[0][0], ElementsAre(0)) << "loading takes no tokens";
  EXPECT_EQ(t.Apply({{{0, 0, 1, ReplicaState::kReady}}}), 3u);
  EXPECT_THAT(t.view()->hosts[0][0], ElementsAre(0, 1));
  EXPECT_EQ(t.Apply({{{0, 0, 0, ReplicaState::kDropping}}}), 4u);
  EXPECT_THAT(t.view()->hosts[0][0], ElementsAre(1));
  EXPECT_EQ(t.Apply({{{0, 0, 0, std::nullopt}}}), 5u);
  EXPECT_EQ(t.Apply({{{0, 0, 0, std::nullopt}}}), 5u) << "no change, no new epoch";
  EXPECT_THAT(t.Hosts(0, 0, ReplicaState::kReady), ElementsAre(1));
  EXPECT_THAT(before->hosts[0][0], ElementsAre(0)) << "a view already taken does not change";
}

TEST(PlacementTableTest, PoolsJoinAndMoveByName) {
  PlacementTable t(testing::TinyConfig(), TwoPools());
  EXPECT_EQ(t.UpsertPool({"c", "127.0.0.1:3", "cpu", 4, false}), 2);
  EXPECT_EQ(t.epoch(), 2u);
  EXPECT_THAT(t.replicas_of_pool(2), IsEmpty());
  EXPECT_EQ(t.UpsertPool({"b", "127.0.0.1:9", "cpu", 0, false}), 1);
  EXPECT_EQ(t.view()->addresses[1], "127.0.0.1:9");
  EXPECT_EQ(t.epoch(), 3u);
  EXPECT_FALSE(t.FindPool("z").ok());
  EXPECT_EQ(*t.FindPool("c"), 2);
}

TEST(PlacementTableTest, ARemovedPoolLosesItsReplicasAndComesBackByJoiningUnderItsIndex) {
  PlacementTable t(testing::TinyConfig(), TwoPools());
  t.RemovePool(1);
  EXPECT_EQ(t.epoch(), 2u);
  EXPECT_THAT(t.replicas_of_pool(1), IsEmpty());
  EXPECT_THAT(t.view()->hosts[0][3], IsEmpty());
  EXPECT_EQ(t.view()->addresses[1], "") << "nobody dials a removed pool";
  EXPECT_FALSE(t.FindPool("b").ok());
  EXPECT_TRUE(t.pool(1).removed);
  EXPECT_EQ(t.UpsertPool({"b", "127.0.0.1:2", "cpu", 0, false}), 1);
  EXPECT_FALSE(t.pool(1).removed);
  EXPECT_EQ(t.epoch(), 3u) << "the same address, but listed again";
  EXPECT_EQ(t.view()->addresses[1], "127.0.0.1:2");
  EXPECT_EQ(*t.FindPool("b"), 1);
}

TEST(PlacementTableTest, AnEmptyStartServesNothingUntilPoolsJoin) {
  PlacementTable t(testing::TinyConfig(), ClusterSpec());
  EXPECT_EQ(t.pool_count(), 0);
  EXPECT_THAT(t.view()->names, IsEmpty());
  EXPECT_THAT(t.view()->hosts[0][0], IsEmpty());
  EXPECT_EQ(t.UpsertPool({"a", "10.0.0.2:50061", "cpu", 0, false}), 0);
}

}  // namespace
}  // namespace moe
