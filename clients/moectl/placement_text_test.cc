#include "clients/moectl/placement_text.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace moe::cli {
namespace {

using ::testing::HasSubstr;

moe::v1::Placement TwoPools() {
  moe::v1::Placement p;
  p.set_epoch(7);
  moe::v1::PoolInfo* a = p.add_pools();
  a->set_name("pool-a");
  a->set_healthy(true);
  a->set_device("cpu");
  a->set_expert_slots(4);
  moe::v1::HostedExperts* h = a->add_hosts();
  h->set_layer(0);
  h->add_experts(0);
  h->add_experts(2);
  h->add_shared(0);
  a->add_loading()->set_layer(0);
  a->mutable_loading(0)->add_experts(5);
  moe::v1::PoolInfo* b = p.add_pools();
  b->set_name("pool-b");
  b->set_draining(true);
  b->add_hosts()->set_layer(0);
  moe::v1::LayerBalance* l = p.add_layers();
  l->set_layer(0);
  l->set_balancedness(0.875);
  l->add_expert_tokens(12);
  l->add_expert_tokens(3.4);
  return p;
}

TEST(PlacementTextTest, OneLinePerPoolAndPerLayer) {
  const std::string s = FormatPlacement(TwoPools());
  EXPECT_THAT(s, HasSubstr("epoch 7\n"));
  EXPECT_THAT(s, HasSubstr("pool-a"));
  EXPECT_THAT(s, HasSubstr("slots 4"));
  EXPECT_THAT(s, HasSubstr("L0 0 2 s0 (loading 5)"));
  EXPECT_THAT(s, HasSubstr("UNHEALTHY"));
  EXPECT_THAT(s, HasSubstr("draining  L0 -"));
  EXPECT_THAT(s, HasSubstr("layer 0  balancedness 0.875  expert tokens 12 3"));
}

TEST(PlacementTextTest, RebalanceShowsBothPlacementsAndThePlanPerLayer) {
  moe::v1::RebalanceResponse r;
  *r.mutable_before() = TwoPools();
  *r.mutable_after() = TwoPools();
  r.mutable_after()->set_epoch(9);
  r.set_changed(true);
  r.add_predicted_before(0.5);
  r.add_predicted_after(0.96);
  r.set_reason("layer 0: balancedness 0.500 -> 0.960");
  const std::string s = FormatRebalance(r);
  EXPECT_THAT(s, HasSubstr("before:\nepoch 7"));
  EXPECT_THAT(s, HasSubstr("after:\nepoch 9"));
  EXPECT_THAT(s, HasSubstr("changed; planned balancedness:\n  layer 0  0.500 -> 0.960  layer 0:"));
}

}  // namespace
}  // namespace moe::cli
