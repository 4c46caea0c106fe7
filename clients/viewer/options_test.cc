#include "clients/viewer/options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace moe::viewer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(OptionsTest, ParseIntListTakesRangesAndLists) {
  EXPECT_THAT(*ParseIntList("0-3,6", "--layers"), ElementsAre(0, 1, 2, 3, 6));
  EXPECT_THAT(*ParseIntList(" 2, 1,2 ", "--layers"), ElementsAre(1, 2));
  EXPECT_THAT(*ParseIntList("", "--layers"), IsEmpty());
  EXPECT_THAT(*ParseIntList("all", "--layers"), IsEmpty());
}

TEST(OptionsTest, ParseIntListErrorsNameTheFlag) {
  for (const char* bad : {"a", "1-", "-1", "3-1", "1,,2"}) {
    absl::StatusOr<std::vector<int>> r = ParseIntList(bad, "--layers");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_THAT(Message(r.status()), HasSubstr("--layers: ")) << bad;
  }
}

TEST(OptionsTest, HostPort) {
  EXPECT_TRUE(ValidateHostPort("127.0.0.1:50050", "--target", false).ok());
  EXPECT_TRUE(ValidateHostPort("[::1]:80", "--target", false).ok());
  EXPECT_TRUE(ValidateHostPort(":8080", "--listen", true).ok());
  EXPECT_THAT(Message(ValidateHostPort(":8080", "--target", false)), HasSubstr("--target: "));
  EXPECT_THAT(Message(ValidateHostPort("localhost", "--target", false)),
              HasSubstr("is not HOST:PORT"));
  EXPECT_THAT(Message(ValidateHostPort("h:70000", "--router", false)),
              HasSubstr("--router: \"h:70000\" has no port"));
}

TEST(OptionsTest, ServeErrorsNameTheFlag) {
  ServeOptions ok;
  ok.target = "127.0.0.1:50050";
  EXPECT_TRUE(ValidateServeOptions(ok).ok());
  struct Case {
    void (*mutate)(ServeOptions&);
    const char* flag;
  };
  for (const Case& c : std::vector<Case>{
           {[](ServeOptions& o) { o.listen = "nope"; }, "--listen: "},
           {[](ServeOptions& o) { o.target = ""; }, "--target: "},
           {[](ServeOptions& o) { o.trace = "t.bin"; }, "not both"},
           {[](ServeOptions& o) { o.router = "router"; }, "--router: "},
           {[](ServeOptions& o) { o.watch.sample_rate = 0; }, "--sample_rate: must be in (0, 1]"},
           {[](ServeOptions& o) { o.watch.snapshot_interval_ms = 0; }, "--snapshot_interval_ms: "},
           {[](ServeOptions& o) { o.watch.layers = {-1}; }, "--layers: "},
           {[](ServeOptions& o) { o.speed = 0; }, "--speed: must be > 0"},
           {[](ServeOptions& o) { o.http_threads = 1; }, "--http_threads: "},
           {[](ServeOptions& o) { o.deadline_s = 0; }, "--deadline_s: "},
       }) {
    ServeOptions o = ok;
    c.mutate(o);
    const absl::Status s = ValidateServeOptions(o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.flag;
    EXPECT_THAT(Message(s), HasSubstr(c.flag));
  }
}

TEST(OptionsTest, TopErrorsNameTheFlag) {
  TopOptions o;
  o.trace = "t.bin";
  EXPECT_TRUE(ValidateTopOptions(o).ok());
  o.color = "sometimes";
  EXPECT_THAT(Message(ValidateTopOptions(o)), HasSubstr("--color: "));
  o.color = "never";
  o.duration_s = -2;
  EXPECT_THAT(Message(ValidateTopOptions(o)), HasSubstr("--duration_s: must be >= 0, got -2"));
  o.duration_s = 0;
  o.trace = "";
  EXPECT_THAT(Message(ValidateTopOptions(o)), HasSubstr("--target=HOST:PORT"));
}

TEST(OptionsTest, RecordErrorsNameTheFlag) {
  RecordOptions o;
  EXPECT_THAT(Message(ValidateRecordOptions(o)), HasSubstr("--target: required"));
  o.target = "127.0.0.1:1";
  EXPECT_THAT(Message(ValidateRecordOptions(o)), HasSubstr("--out: required"));
  o.out = "x.trace";
  EXPECT_TRUE(ValidateRecordOptions(o).ok());
  o.max_events = -1;
  EXPECT_THAT(Message(ValidateRecordOptions(o)), HasSubstr("--max_events: "));
  o.max_events = 0;
  o.watch.snapshot_interval_ms = -5;
  EXPECT_THAT(Message(ValidateRecordOptions(o)), HasSubstr("--snapshot_interval_ms: "));
}

TEST(OptionsTest, GifErrorsNameTheFlag) {
  GifCommandOptions o;
  o.gif.out = "x.gif";
  o.trace = "t.bin";
  EXPECT_TRUE(ValidateGifCommandOptions(o).ok());
  o.gif.fps = 0;
  EXPECT_THAT(Message(ValidateGifCommandOptions(o)), HasSubstr("--fps: "));
  o.gif.fps = 12;
  o.gif.out = "";
  EXPECT_THAT(Message(ValidateGifCommandOptions(o)), HasSubstr("--out: required"));
  o.gif.out = "x.gif";
  o.prompt = "hello";
  EXPECT_THAT(Message(ValidateGifCommandOptions(o)), HasSubstr("--prompt: only with --target"));
  o.trace = "";
  o.target = "127.0.0.1:50050";
  EXPECT_TRUE(ValidateGifCommandOptions(o).ok());
  o.prompt = "";
  EXPECT_THAT(Message(ValidateGifCommandOptions(o)), HasSubstr("--prompt: required"));
  o.prompt = "p";
  o.layer = -1;
  EXPECT_THAT(Message(ValidateGifCommandOptions(o)), HasSubstr("--layer: "));
  o.layer = 0;
  o.png_frame = 500;
  EXPECT_THAT(Message(ValidateGifCommandOptions(o)), HasSubstr("--png_frame: must be < --frames"));
  o.png_frame = -1;
  o.trace = "t.bin";
  EXPECT_THAT(Message(ValidateGifCommandOptions(o)), HasSubstr("not both"));
}

}  // namespace
}  // namespace moe::viewer
