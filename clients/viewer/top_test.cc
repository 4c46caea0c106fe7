#include "clients/viewer/top.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"

namespace moe::viewer {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadAll(std::FILE* f) {
  std::rewind(f);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  return out;
}

TEST(TopTest, ReplayedTraceEndsWithOnePlainFrame) {
  auto events = std::make_shared<std::vector<moe::v1::RoutingEvent>>();
  moe::v1::RoutingEvent load;
  load.mutable_load()->set_tokens_per_second(42);
  for (int l = 0; l < 2; ++l) {
    auto* layer = load.mutable_load()->add_layers();
    layer->set_layer(l);
    for (int64_t c : {9, 1, 0, 4}) layer->add_tokens(c);
  }
  events->push_back(load);
  moe::v1::RoutingEvent token;
  token.mutable_token()->set_text("jury");
  token.mutable_token()->mutable_routing()->add_experts()->set_id(3);
  events->push_back(token);
  std::unique_ptr<EventSource> source = ReplayEvents(events, /*speed=*/0, /*loop=*/false);
  DashboardModel model("brown-moe", "trace t", 1, 4);
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  TopIo io;
  io.out = out;
  io.in_fd = -1;
  io.width = 80;
  io.height = 20;
  TopOptions options;
  ASSERT_TRUE(RunTop(options, *source, model, io).ok());
  const std::string text = ReadAll(out);
  std::fclose(out);
  EXPECT_EQ(model.events(), 2);
  EXPECT_THAT(text, HasSubstr("brown-moe"));
  EXPECT_THAT(text, HasSubstr("jury"));
  EXPECT_THAT(text, Not(HasSubstr("\x1b[")));  // no escapes into a pipe
}

TEST(TopTest, DurationEndsAnIdleDashboard) {
  auto events = std::make_shared<std::vector<moe::v1::RoutingEvent>>(1);
  std::unique_ptr<EventSource> source = ReplayEvents(events, 1, /*loop=*/true, absl::Hours(1));
  DashboardModel model("m", "t", 1, 0);
  std::FILE* out = std::tmpfile();
  TopIo io;
  io.out = out;
  io.in_fd = -1;
  TopOptions options;
  options.duration_s = 0.3;
  const absl::Time start = absl::Now();
  EXPECT_TRUE(RunTop(options, *source, model, io).ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  std::fclose(out);
}

}  // namespace
}  // namespace moe::viewer
