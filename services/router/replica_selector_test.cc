#include "services/router/replica_selector.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace moe {
namespace {

// A clock that moves only when told to.
struct FakeClock {
  absl::Time now = absl::UnixEpoch() + absl::Hours(1);
  ReplicaSelector::Clock fn() {
    return [this] { return now; };
  }
};

TEST(ReplicaSelectorTest, PicksTheLeastLoadedHealthyReplicaFirstOnTies) {
  FakeClock clock;
  ReplicaSelector s(3, absl::Seconds(1), clock.fn());
  EXPECT_EQ(s.Pick({1, 2}, 10), 1);  // tie: first in the order given
  EXPECT_EQ(s.Pick({1, 2}, 4), 2);
  EXPECT_EQ(s.Pick({1, 2}, 6), 2);  // 4 < 10
  EXPECT_EQ(s.Pick({2, 1}, 1), 2);  // 10 == 10: the first given
  EXPECT_EQ(s.Pick({1, 2}, 1), 1);  // 10 < 11
  EXPECT_DOUBLE_EQ(s.load(0), 0);
  EXPECT_DOUBLE_EQ(s.load(1), 11);
}

TEST(ReplicaSelectorTest, SkipsUnhealthyPoolsAndSaysWhenNoneIsLeft) {
  FakeClock clock;
  ReplicaSelector s(2, absl::Seconds(1), clock.fn());
  EXPECT_TRUE(s.SetHealthy(0, false));
  EXPECT_FALSE(s.SetHealthy(0, false));  // no change
  EXPECT_EQ(s.Pick({0, 1}, 5), 1);
  EXPECT_TRUE(s.SetHealthy(1, false));
  EXPECT_EQ(s.Pick({0, 1}, 5), -1);
  EXPECT_DOUBLE_EQ(s.load(1), 5);  // a failed pick adds nothing
  EXPECT_TRUE(s.SetHealthy(0, true));
  EXPECT_EQ(s.Pick({0, 1}, 1), 0);
}

TEST(ReplicaSelectorTest, LoadHalvesEveryHalfLife) {
  FakeClock clock;
  ReplicaSelector s(1, absl::Seconds(1), clock.fn());
  s.Pick({0}, 64);
  clock.now += absl::Seconds(1);
  EXPECT_DOUBLE_EQ(s.load(0), 32);
  clock.now += absl::Seconds(2);
  EXPECT_DOUBLE_EQ(s.load(0), 8);
  clock.now += absl::Milliseconds(500);
  EXPECT_NEAR(s.load(0), 8 / std::sqrt(2.0), 1e-9);
}

// The router's handlers pick concurrently. Each pick's load update must survive the others: with
// a frozen clock (no decay) the loads add up to every token assigned. (A load-then-store on an
// atomic, as the router once did, loses some of them here.)
TEST(ReplicaSelectorTest, ConcurrentPicksLoseNoLoad) {
  FakeClock clock;
  ReplicaSelector s(4, absl::Seconds(1), clock.fn());
  constexpr int kThreads = 8;
  constexpr int kPicks = 50000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&s, t] {
      const std::vector<int> hosts =
          t % 2 == 0 ? std::vector<int>{0, 1, 2, 3} : std::vector<int>{3, 2, 1, 0};
      for (int i = 0; i < kPicks; ++i) ASSERT_GE(s.Pick(hosts, 1), 0);
    });
  }
  for (auto& t : threads) t.join();
  double total = 0;
  for (int p = 0; p < 4; ++p) total += s.load(p);
  EXPECT_DOUBLE_EQ(total, double{kThreads} * kPicks);
  // Least-loaded choice keeps the pools within one token of each other.
  for (int p = 0; p < 4; ++p) EXPECT_NEAR(s.load(p), total / 4, 1.0) << "pool " << p;
}

}  // namespace
}  // namespace moe
