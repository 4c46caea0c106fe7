#include "clients/viewer/trace.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/delimited_message_util.h"
#include "google/protobuf/util/message_differencer.h"

namespace moe::viewer {
namespace {

using ::testing::HasSubstr;

std::string TempPath(absl::string_view name) {
  return (std::filesystem::path(::testing::TempDir()) /
          absl::StrCat("viewer_trace_", getpid(), "_", name))
      .string();
}

moe::v1::RoutingEvent Token(const std::string& request, int position, int layer,
                            std::vector<int> ids, int m) {
  moe::v1::RoutingEvent e;
  e.set_time_unix_micros(1000 + position);
  auto* t = e.mutable_token();
  t->set_request_id(request);
  t->set_position(position);
  t->set_text(absl::StrCat("t", position));
  auto* r = t->mutable_routing();
  r->set_layer(layer);
  for (int id : ids) {
    auto* c = r->add_experts();
    c->set_id(id);
    c->set_expert(id / m);
    c->set_micro(id % m);
    c->set_weight(1.f / ids.size());
  }
  return e;
}

moe::v1::RoutingEvent Load(int layers, int width) {
  moe::v1::RoutingEvent e;
  for (int l = 0; l < layers; ++l) {
    auto* layer = e.mutable_load()->add_layers();
    layer->set_layer(l);
    for (int i = 0; i < width; ++i) layer->add_tokens(i);
  }
  return e;
}

TEST(TraceTest, WriteReadRoundTripKeepsHeaderAndEvents) {
  const std::string path = TempPath("roundtrip");
  TraceHeader header;
  header.model.set_name("brown-moe");
  header.model.set_n_experts(8);
  header.model.set_granularity(2);
  header.model.set_n_layers(3);
  header.placement.add_pools()->set_name("pool-a");
  std::vector<moe::v1::RoutingEvent> events = {Token("a", 0, 0, {3, 12}, 2), Load(3, 16),
                                               Token("a", 0, 1, {0}, 2)};
  events[1].set_dropped(4);
  {
    absl::StatusOr<std::unique_ptr<TraceWriter>> w = TraceWriter::Create(path, &header);
    ASSERT_TRUE(w.ok()) << w.status();
    for (const auto& e : events) ASSERT_TRUE((*w)->Write(e).ok());
    EXPECT_EQ((*w)->events_written(), 3);
    ASSERT_TRUE((*w)->Close().ok());
  }
  absl::StatusOr<Trace> trace = ReadTrace(path);
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_TRUE(trace->header.has_value());
  EXPECT_EQ(trace->header->model.name(), "brown-moe");
  EXPECT_EQ(trace->header->placement.pools(0).name(), "pool-a");
  ASSERT_EQ(trace->events.size(), events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(trace->events[i], events[i]))
        << i;
  }
}

TEST(TraceTest, BareDelimitedEventsReadWithoutHeader) {
  const std::string path = TempPath("bare");
  {
    std::ofstream out(path, std::ios::binary);
    for (const auto& e : {Token("r", 0, 0, {1}, 1), Token("r", 1, 0, {2}, 1)}) {
      ASSERT_TRUE(google::protobuf::util::SerializeDelimitedToOstream(e, &out));
    }
  }
  absl::StatusOr<Trace> trace = ReadTrace(path);
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_FALSE(trace->header.has_value());
  ASSERT_EQ(trace->events.size(), 2u);
  EXPECT_EQ(trace->events[1].token().position(), 1);
}

TEST(TraceTest, EmptyTraceWithHeaderHasNoEvents) {
  const std::string path = TempPath("empty");
  TraceHeader header;
  ASSERT_TRUE((*TraceWriter::Create(path, &header))->Close().ok());
  absl::StatusOr<Trace> trace = ReadTrace(path);
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_TRUE(trace->header.has_value());
  EXPECT_TRUE(trace->events.empty());
}

TEST(TraceTest, TruncatedEventIsDataLossNamingItsIndex) {
  const std::string path = TempPath("truncated");
  {
    auto w = TraceWriter::Create(path, nullptr);
    ASSERT_TRUE(w.ok());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE((*w)->Write(Token("r", i, 0, {1, 2}, 1)).ok());
    ASSERT_TRUE((*w)->Close().ok());
  }
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 3);
  absl::StatusOr<Trace> trace = ReadTrace(path);
  ASSERT_FALSE(trace.ok());
  EXPECT_EQ(trace.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(trace.status().message()), HasSubstr("event 2"));
  EXPECT_THAT(std::string(trace.status().message()), HasSubstr(path));
}

TEST(TraceTest, MissingFileIsNotFound) {
  absl::StatusOr<Trace> trace = ReadTrace(TempPath("does-not-exist"));
  EXPECT_EQ(trace.status().code(), absl::StatusCode::kNotFound);
}

TEST(TraceTest, InferLayoutFromTokenEvents) {
  // m = 2: id 13 = expert 6 micro 1; the largest id seen bounds n_experts from below.
  moe::v1::RoutingEvent shared = Token("r", 1, 2, {0, 13, 4}, 2);
  auto* s = shared.mutable_token()->mutable_routing()->add_shared();
  s->set_expert(1);
  absl::StatusOr<ModelLayout> layout =
      InferLayout({Token("r", 0, 0, {3, 12}, 2), shared, Token("r", 2, 1, {5}, 2)});
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->flow.granularity, 2);
  EXPECT_EQ(layout->flow.n_experts, 7);
  EXPECT_EQ(layout->flow.n_shared, 2);
  EXPECT_EQ(layout->flow.top_k, 3);
  EXPECT_EQ(layout->n_layers, 3);
  EXPECT_THAT(layout->origin, HasSubstr("inferred from 3 events"));
}

TEST(TraceTest, InferLayoutTakesTheExactWidthFromALoadSnapshot) {
  absl::StatusOr<ModelLayout> layout = InferLayout({Token("r", 0, 0, {3}, 1), Load(4, 8)});
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->flow.granularity, 1);
  EXPECT_EQ(layout->flow.n_experts, 8);  // not 4, as the largest id alone would say
  EXPECT_EQ(layout->n_layers, 4);
}

TEST(TraceTest, InferLayoutNeedsTokenOrLoadEvents) {
  moe::v1::RoutingEvent started;
  started.mutable_started()->set_request_id("r");
  absl::StatusOr<ModelLayout> layout = InferLayout({started});
  EXPECT_EQ(layout.status().code(), absl::StatusCode::kNotFound);
}

TEST(TraceTest, TraceLayoutPrefersTheHeader) {
  Trace trace;
  trace.events = {Token("r", 0, 0, {1}, 1)};
  trace.header = TraceHeader();
  trace.header->model.set_n_experts(16);
  trace.header->model.set_granularity(4);
  trace.header->model.set_top_k(8);
  trace.header->model.set_n_layers(6);
  absl::StatusOr<ModelLayout> layout = TraceLayout(trace);
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(layout->flow.n_experts, 16);
  EXPECT_EQ(layout->flow.granularity, 4);
  EXPECT_EQ(layout->n_layers, 6);
  EXPECT_EQ(layout->origin, "trace header");
}

}  // namespace
}  // namespace moe::viewer
