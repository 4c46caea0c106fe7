#include "services/orchestrator/event_hub.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/time/clock.h"

namespace moe {
namespace {

using ::testing::HasSubstr;

class EventHubTest : public ::testing::Test {
 protected:
  EventHubTest() : hub_(Config(), registry_) {}
  static ModelConfig Config() {
    ModelConfig c;
    c.n_layers = 2;
    c.n_experts = 4;
    c.granularity = 1;
    c.top_k = 2;
    return c;
  }
  void Publish(const std::string& request, int position, int layer) {
    hub_.PublishToken(request, position, layer, [&](bool probs) {
      moe::v1::RoutingEvent ev;
      ev.mutable_token()->set_request_id(request);
      ev.mutable_token()->set_position(position);
      ev.mutable_token()->mutable_routing()->set_layer(layer);
      if (probs) ev.mutable_token()->mutable_routing()->add_probs(0.5f);
      return ev;
    });
  }
  prometheus::Registry registry_;
  EventHub hub_;
};

// PopBatch, parsed as a subscriber would.
bool Pop(EventHub::Subscriber& sub, size_t max_events, moe::v1::WatchRoutingResponse* out) {
  std::string wire;
  if (!sub.PopBatch(max_events, &wire)) return false;
  EXPECT_TRUE(out->ParseFromString(wire));
  return true;
}

TEST_F(EventHubTest, FullQueueDropsTheOldestAndCountsIt) {
  moe::v1::WatchRoutingRequest req;
  req.set_queue_size(3);
  auto sub = hub_.Subscribe(req, nullptr);
  ASSERT_TRUE(sub.ok());
  for (int p = 0; p < 5; ++p) Publish("r", p, 0);
  moe::v1::WatchRoutingResponse batch;
  ASSERT_TRUE(Pop(**sub, 2, &batch));
  ASSERT_EQ(batch.events_size(), 2);
  EXPECT_EQ(batch.events(0).token().position(), 2);  // 0 and 1 were dropped
  EXPECT_EQ(batch.events(1).token().position(), 3);
  EXPECT_EQ(batch.dropped(), 2u);
  EXPECT_EQ((*sub)->dropped(), 2u);
  ASSERT_TRUE(Pop(**sub, 100, &batch));
  ASSERT_EQ(batch.events_size(), 1);
  EXPECT_EQ(batch.events(0).token().position(), 4);
  EXPECT_FALSE(Pop(**sub, 100, &batch));
}

TEST_F(EventHubTest, WakesTheWriterOnceForABurstOffThePublishingThread) {
  std::atomic<int> wakes{0};
  std::atomic<bool> on_publisher{false};
  const std::thread::id publisher = std::this_thread::get_id();
  absl::Notification woke;
  auto sub = hub_.Subscribe(moe::v1::WatchRoutingRequest(), [&] {
    if (std::this_thread::get_id() == publisher) on_publisher = true;
    if (++wakes == 1) woke.Notify();
  });
  ASSERT_TRUE(sub.ok());
  for (int p = 0; p < 50; ++p) Publish("r", p, p % 2);  // one burst, well inside kLinger
  ASSERT_TRUE(woke.WaitForNotificationWithTimeout(absl::Seconds(5)));
  moe::v1::WatchRoutingResponse batch;
  ASSERT_TRUE(Pop(**sub, 1000, &batch));
  EXPECT_EQ(batch.events_size(), 50);
  EXPECT_FALSE(on_publisher.load());
  absl::SleepFor(4 * EventHub::kLinger);
  EXPECT_EQ(wakes.load(), 1);
}

TEST_F(EventHubTest, FiltersByRequestLayerAndSamplingWithProbsOnlyWhenAsked) {
  moe::v1::WatchRoutingRequest one;
  one.set_request_id("a");
  one.add_layers(1);
  one.set_include_probs(true);
  auto a = hub_.Subscribe(one, nullptr);
  moe::v1::WatchRoutingRequest half;
  half.set_sample_rate(0.5f);
  auto h = hub_.Subscribe(half, nullptr);
  ASSERT_TRUE(a.ok() && h.ok());
  for (int p = 0; p < 200; ++p) {
    for (int l = 0; l < 2; ++l) {
      Publish("a", p, l);
      Publish("b", p, l);
    }
  }
  moe::v1::WatchRoutingResponse batch;
  int n = 0;
  while (Pop(**a, 64, &batch)) {
    for (const moe::v1::RoutingEvent& ev : batch.events()) {
      EXPECT_EQ(ev.token().request_id(), "a");
      EXPECT_EQ(ev.token().routing().layer(), 1);
      EXPECT_EQ(ev.token().routing().probs_size(), 1);
      ++n;
    }
  }
  EXPECT_EQ(n, 200);
  std::map<std::pair<std::string, int>, int> layers_per_token;
  int sampled = 0;
  while (Pop(**h, 64, &batch)) {
    for (const moe::v1::RoutingEvent& ev : batch.events()) {
      EXPECT_EQ(ev.token().routing().probs_size(), 0);
      ++layers_per_token[{ev.token().request_id(), ev.token().position()}];
      ++sampled;
    }
  }
  EXPECT_GT(sampled, 800 * 0.35);
  EXPECT_LT(sampled, 800 * 0.65);
  for (const auto& [token, layers] : layers_per_token) EXPECT_EQ(layers, 2);  // whole tokens
}

TEST_F(EventHubTest, BadFiltersNameTheFieldAndUnsubscribeFreesTheSlot) {
  moe::v1::WatchRoutingRequest bad;
  bad.add_layers(5);
  EXPECT_THAT(hub_.Subscribe(bad, nullptr).status().message(), HasSubstr("layers"));
  bad.Clear();
  bad.set_snapshot_interval_ms(10);
  EXPECT_THAT(hub_.Subscribe(bad, nullptr).status().message(), HasSubstr("snapshot_interval_ms"));
  auto s = hub_.Subscribe(moe::v1::WatchRoutingRequest(), nullptr);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(hub_.has_token_subscribers());
  hub_.Unsubscribe(*s);
  EXPECT_FALSE(hub_.has_token_subscribers());
}

TEST_F(EventHubTest, SnapshotsCountTokensPerExpertWithBalanceFigures) {
  moe::v1::WatchRoutingRequest req;
  req.set_snapshot_interval_ms(50);
  absl::Notification woke;
  auto s = hub_.Subscribe(req, [&] {
    if (!woke.HasBeenNotified()) woke.Notify();
  });
  ASSERT_TRUE(s.ok());
  hub_.CountRouting(0, {0, 0, 0, 1});  // expert 0: 3, expert 1: 1
  ASSERT_TRUE(woke.WaitForNotificationWithTimeout(absl::Seconds(5)));
  moe::v1::WatchRoutingResponse batch;
  ASSERT_TRUE(Pop(**s, 10, &batch));
  ASSERT_EQ(batch.events_size(), 1);
  const moe::v1::RoutingEvent& ev = batch.events(0);
  ASSERT_TRUE(ev.has_load());
  const auto& l0 = ev.load().layers(0);
  EXPECT_EQ(l0.tokens(0), 3);
  EXPECT_EQ(l0.tokens(1), 1);
  // counts {3, 1, 0, 0}: mean 1, population std sqrt(((2)^2 + 0 + 1 + 1) / 4) = sqrt(1.5)
  EXPECT_NEAR(l0.cv(), std::sqrt(1.5), 1e-9);
  EXPECT_NEAR(l0.max_over_mean(), 3.0, 1e-9);
}

}  // namespace
}  // namespace moe
