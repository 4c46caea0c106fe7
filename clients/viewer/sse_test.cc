#include "clients/viewer/sse.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace moe::viewer {
namespace {

// The client side, as api.js's sseMessages does it (and the HTML standard): line ends
// normalized, events split at blank lines, data lines joined with "\n".
std::vector<std::pair<std::string, std::string>> Parse(std::string stream) {
  stream = absl::StrReplaceAll(stream, {{"\r\n", "\n"}, {"\r", "\n"}});
  std::vector<std::pair<std::string, std::string>> out;
  for (absl::string_view block : absl::StrSplit(stream, "\n\n", absl::SkipEmpty())) {
    std::string event = "message";
    std::vector<std::string> data;
    bool any = false;
    for (absl::string_view line : absl::StrSplit(block, '\n')) {
      if (!line.empty() && line[0] == ':') continue;
      const size_t colon = line.find(':');
      absl::string_view field = line.substr(0, colon);
      absl::string_view value = colon == absl::string_view::npos ? "" : line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
      if (field == "event") event = std::string(value);
      if (field == "data") {
        data.emplace_back(value);
        any = true;
      }
    }
    if (any) out.emplace_back(event, absl::StrJoin(data, "\n"));
  }
  return out;
}

TEST(SseTest, OneLineEvent) {
  EXPECT_EQ(SseEvent("token", R"({"a":1})"), "event: token\ndata: {\"a\":1}\n\n");
}

TEST(SseTest, EveryLineBreakStartsADataLine) {
  EXPECT_EQ(SseEvent("x", "a\nb\r\nc\rd"), "event: x\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
  // A trailing break and an empty line stay: no "\n\n" inside the event ends it early.
  EXPECT_EQ(SseEvent("x", "a\n\nb\n"), "event: x\ndata: a\ndata: \ndata: b\ndata: \n\n");
}

TEST(SseTest, MultiLineDataSurvivesTheClientParser) {
  const std::string data = "line one\n\nline three: with colon\r\n data: fake\r";
  const auto events =
      Parse(SseEvent("token", data) + SseComment("keep\nalive") + SseEvent("done", "{}"));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].first, "token");
  EXPECT_EQ(events[0].second, "line one\n\nline three: with colon\n data: fake\n");
  EXPECT_EQ(events[1].first, "done");
  EXPECT_EQ(events[1].second, "{}");
}

TEST(SseTest, EventNameCannotInjectLines) {
  EXPECT_EQ(SseEvent("a\ndata: x", "y"), "event: a data: x\ndata: y\n\n");
  EXPECT_EQ(SseComment("a\r\nb"), ": a  b\n\n");
  EXPECT_EQ(SseRetry(2000), "retry: 2000\n\n");
}

}  // namespace
}  // namespace moe::viewer
