#include "clients/viewer/dashboard_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace moe::viewer {
namespace {

using ::testing::ElementsAre;

moe::v1::RoutingEvent Token(const std::string& request, int position, int layer,
                            std::vector<int> ids) {
  moe::v1::RoutingEvent e;
  auto* t = e.mutable_token();
  t->set_request_id(request);
  t->set_position(position);
  t->set_text("tok");
  auto* r = t->mutable_routing();
  r->set_layer(layer);
  for (int id : ids) r->add_experts()->set_id(id);
  return e;
}

TEST(DashboardModelTest, LayersOfOneTokenBecomeOneRecentEntry) {
  DashboardModel model("m", "t", 1, 4);
  // Two requests of one batch interleave layer by layer.
  model.Add(Token("a", 5, 0, {1, 2}));
  model.Add(Token("b", 9, 0, {3}));
  model.Add(Token("b", 9, 1, {0}));
  model.Add(Token("a", 5, 1, {2, 3}));
  const DashboardState s = model.State(false);
  ASSERT_EQ(s.recent.size(), 2u);
  ASSERT_EQ(s.recent[0].layers.size(), 2u);
  EXPECT_EQ(s.recent[0].layers[0].layer, 0);
  EXPECT_THAT(s.recent[0].layers[0].experts, ElementsAre(1, 2));
  EXPECT_THAT(s.recent[0].layers[1].experts, ElementsAre(2, 3));
  EXPECT_EQ(s.recent[1].layers.size(), 2u);
}

TEST(DashboardModelTest, PlacementEventsSetTheEpochAndBalanceAndOlderOnesAreIgnored) {
  DashboardModel model("m", "t", 1, 4);
  EXPECT_EQ(model.State(false).placement_epoch, 0u);
  moe::v1::RoutingEvent e;
  moe::v1::Placement* p = e.mutable_placement()->mutable_placement();
  p->set_epoch(7);
  p->add_layers()->set_balancedness(0.5);
  p->add_layers()->set_balancedness(0.98);
  model.Add(e);
  EXPECT_EQ(model.State(false).placement_epoch, 7u);
  EXPECT_THAT(model.State(false).balancedness, ElementsAre(0.5, 0.98));
  p->set_epoch(6);
  p->mutable_layers(0)->set_balancedness(1);
  model.Add(e);
  EXPECT_EQ(model.State(false).placement_epoch, 7u);
  EXPECT_THAT(model.State(false).balancedness, ElementsAre(0.5, 0.98));
}

TEST(DashboardModelTest, TokenCountsStandInUntilTheFirstSnapshot) {
  DashboardModel model("m", "t", 1, 4);
  model.Add(Token("a", 0, 0, {1, 2}));
  model.Add(Token("a", 1, 0, {1}));
  DashboardState s = model.State(false);
  ASSERT_EQ(s.layers.size(), 1u);
  EXPECT_THAT(s.layers[0].tokens, ElementsAre(0, 2, 1, 0));

  moe::v1::RoutingEvent load;
  load.set_dropped(7);
  load.mutable_load()->set_tokens_per_second(3.5);
  for (int l : {1, 0}) {
    auto* layer = load.mutable_load()->add_layers();
    layer->set_layer(l);
    for (int64_t c : {5, 0}) layer->add_tokens(c);
  }
  model.Add(load);
  model.Add(Token("a", 2, 0, {3}));  // no longer counted: snapshots rule
  s = model.State(true);
  EXPECT_TRUE(s.color);
  EXPECT_EQ(s.dropped, 7u);
  EXPECT_DOUBLE_EQ(s.tokens_per_second, 3.5);
  ASSERT_EQ(s.layers.size(), 2u);
  EXPECT_EQ(s.layers[0].layer, 0);
  EXPECT_THAT(s.layers[0].tokens, ElementsAre(5, 0, 0, 0));  // padded to n_micro
}

TEST(DashboardModelTest, AnIdleSnapshotKeepsTheLastBusyBars) {
  DashboardModel model("m", "t", 1, 2);
  moe::v1::RoutingEvent busy;
  busy.mutable_load()->set_tokens_per_second(9);
  auto* layer = busy.mutable_load()->add_layers();
  for (int64_t c : {4, 2}) layer->add_tokens(c);
  model.Add(busy);
  moe::v1::RoutingEvent idle = busy;
  idle.mutable_load()->set_tokens_per_second(0);
  idle.mutable_load()->mutable_layers(0)->set_tokens(0, 0);
  idle.mutable_load()->mutable_layers(0)->set_tokens(1, 0);
  model.Add(idle);
  DashboardState s = model.State(false);
  ASSERT_EQ(s.layers.size(), 1u);
  EXPECT_THAT(s.layers[0].tokens, ElementsAre(4, 2));
  EXPECT_EQ(s.tokens_per_second, 0);
  EXPECT_EQ(s.model, "m (idle: last busy interval)");
  model.Add(busy);
  EXPECT_EQ(model.State(false).model, "m");
}

TEST(DashboardModelTest, RecentListIsBounded) {
  DashboardModel model("m", "t", 1, 0, /*max_recent=*/3);
  for (int i = 0; i < 10; ++i) model.Add(Token("a", i, 0, {0}));
  const DashboardState s = model.State(false);
  ASSERT_EQ(s.recent.size(), 3u);
  EXPECT_EQ(model.events(), 10);
}

}  // namespace
}  // namespace moe::viewer
