#include "clients/viewer/event_source.h"

#include <gtest/gtest.h>

#include <thread>

namespace moe::viewer {
namespace {

std::shared_ptr<const std::vector<moe::v1::RoutingEvent>> Events(std::vector<int64_t> times) {
  auto events = std::make_shared<std::vector<moe::v1::RoutingEvent>>();
  for (size_t i = 0; i < times.size(); ++i) {
    moe::v1::RoutingEvent e;
    e.set_time_unix_micros(times[i]);
    e.mutable_token()->set_position(static_cast<int>(i));
    events->push_back(e);
  }
  return events;
}

TEST(ReplayTest, UnpacedReplayGivesEveryEventThenEnds) {
  auto source = ReplayEvents(Events({0, 5'000'000, 9'000'000}), /*speed=*/0, /*loop=*/false);
  moe::v1::RoutingEvent e;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(source->Next(absl::ZeroDuration(), &e), PopResult::kMessage);
    EXPECT_EQ(e.token().position(), i);
  }
  EXPECT_EQ(source->Next(absl::ZeroDuration(), &e), PopResult::kEnd);
  EXPECT_TRUE(source->status().ok());
}

TEST(ReplayTest, PacedReplayWaitsForTheRecordedGap) {
  // 200 ms apart at speed 2: the second event is due 100 ms after the first.
  auto source = ReplayEvents(Events({0, 200'000}), /*speed=*/2, /*loop=*/false);
  moe::v1::RoutingEvent e;
  ASSERT_EQ(source->Next(absl::Seconds(1), &e), PopResult::kMessage);
  const absl::Time first = absl::Now();
  EXPECT_EQ(source->Next(absl::Milliseconds(10), &e), PopResult::kTimeout);
  ASSERT_EQ(source->Next(absl::Seconds(1), &e), PopResult::kMessage);
  EXPECT_GE(absl::Now() - first, absl::Milliseconds(90));
  EXPECT_EQ(e.token().position(), 1);
}

TEST(ReplayTest, LongGapsAreCut) {
  auto source = ReplayEvents(Events({0, 3'600'000'000}), 1, false, absl::Milliseconds(50));
  moe::v1::RoutingEvent e;
  ASSERT_EQ(source->Next(absl::Seconds(1), &e), PopResult::kMessage);
  EXPECT_EQ(source->Next(absl::Seconds(1), &e), PopResult::kMessage);
}

TEST(ReplayTest, LoopStartsOverAndCancelEnds) {
  auto source = ReplayEvents(Events({0, 1}), 0, /*loop=*/true);
  moe::v1::RoutingEvent e;
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(source->Next(absl::Seconds(1), &e), PopResult::kMessage);
    EXPECT_EQ(e.token().position(), i % 2);
  }
  source->Cancel();
  EXPECT_EQ(source->Next(absl::Seconds(1), &e), PopResult::kEnd);
}

TEST(ReplayTest, CancelWakesAWaitingConsumer) {
  auto source = ReplayEvents(Events({0, 60'000'000}), 1, false, absl::Seconds(60));
  moe::v1::RoutingEvent e;
  ASSERT_EQ(source->Next(absl::Seconds(1), &e), PopResult::kMessage);
  std::thread canceller([&] {
    absl::SleepFor(absl::Milliseconds(50));
    source->Cancel();
  });
  const absl::Time start = absl::Now();
  EXPECT_EQ(source->Next(absl::Seconds(30), &e), PopResult::kEnd);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  canceller.join();
}

}  // namespace
}  // namespace moe::viewer
