#include "clients/viewer/record.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"

namespace moe::viewer {
namespace {

TEST(RecordTest, RecordsUpToMaxEventsWithTheHeader) {
  auto events = std::make_shared<std::vector<moe::v1::RoutingEvent>>();
  for (int i = 0; i < 10; ++i) {
    moe::v1::RoutingEvent e;
    e.mutable_token()->set_position(i);
    events->push_back(e);
  }
  std::unique_ptr<EventSource> source = ReplayEvents(events, 0, false);
  RecordOptions options;
  options.out =
      (std::filesystem::path(::testing::TempDir()) / absl::StrCat("viewer_record_", getpid()))
          .string();
  options.max_events = 4;
  TraceHeader header;
  header.model.set_name("brown-moe");
  absl::StatusOr<int64_t> written = RunRecord(options, *source, &header);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, 4);
  absl::StatusOr<Trace> trace = ReadTrace(options.out);
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->header->model.name(), "brown-moe");
  ASSERT_EQ(trace->events.size(), 4u);
  EXPECT_EQ(trace->events[3].token().position(), 3);
}

TEST(RecordTest, SourceEndStopsTheRecording) {
  auto events = std::make_shared<std::vector<moe::v1::RoutingEvent>>(3);
  std::unique_ptr<EventSource> source = ReplayEvents(events, 0, false);
  RecordOptions options;
  options.out =
      (std::filesystem::path(::testing::TempDir()) / absl::StrCat("viewer_record_end_", getpid()))
          .string();
  absl::StatusOr<int64_t> written = RunRecord(options, *source, nullptr);
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(*written, 3);
}

}  // namespace
}  // namespace moe::viewer
