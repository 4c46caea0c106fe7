#include "services/router/load_meter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace moe {
namespace {

using ::testing::ElementsAre;

TEST(LoadMeterTest, CountsPerKeyPerPoolAndPerReplicaAndForgetsByHalves) {
  absl::Time now = absl::UnixEpoch() + absl::Hours(1);
  LoadMeter meter(2, 3, absl::Seconds(10), [&now] { return now; });
  meter.Add(1, {{0, 0, 8}, {0, 2, 4}, {2, 1, 6}});
  meter.Add(1, {{0, 0, 2}, {5, 0, 100}, {1, -1, 7}});  // unknown key and pool are ignored
  EXPECT_THAT(meter.KeyLoads(1), ElementsAre(14, 0, 6));
  EXPECT_THAT(meter.KeyLoads(0), ElementsAre(0, 0, 0));
  EXPECT_THAT(meter.PoolLoads(1, 4), ElementsAre(10, 6, 4, 0));
  EXPECT_THAT(meter.KeyPoolLoads(1, 0, 3), ElementsAre(10, 0, 4));
  now += absl::Seconds(10);
  EXPECT_THAT(meter.KeyLoads(1), ElementsAre(7, 0, 3));
  EXPECT_THAT(meter.KeyPoolLoads(1, 0, 3), ElementsAre(5, 0, 2));
  EXPECT_THAT(meter.PoolLoads(1, 2), ElementsAre(5, 3));
}

}  // namespace
}  // namespace moe
