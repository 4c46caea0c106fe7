#include "clients/viewer/gif_command.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "clients/viewer/trace.h"

namespace moe::viewer {
namespace {

using ::testing::HasSubstr;

std::string TempPath(absl::string_view name) {
  return (std::filesystem::path(::testing::TempDir()) /
          absl::StrCat("viewer_gif_", getpid(), "_", name))
      .string();
}

moe::v1::LayerRouting Routing(int layer, std::vector<int> ids, int m) {
  moe::v1::LayerRouting r;
  r.set_layer(layer);
  for (int id : ids) {
    auto* c = r.add_experts();
    c->set_id(id);
    c->set_expert(id / m);
    c->set_micro(id % m);
    c->set_weight(1.f / ids.size());
  }
  return r;
}

moe::v1::RoutingEvent Token(const std::string& request, int position, int layer,
                            std::vector<int> ids) {
  moe::v1::RoutingEvent e;
  auto* t = e.mutable_token();
  t->set_request_id(request);
  t->set_position(position);
  t->set_text(absl::StrCat("w", position));
  t->set_is_prompt(position < 2);
  *t->mutable_routing() = Routing(layer, ids, 2);
  return e;
}

TEST(GifCommandTest, TokensOfOneLayerAndRequestInOrder) {
  const std::vector<moe::v1::RoutingEvent> events = {Token("a", 0, 0, {1, 6}),
                                                     Token("a", 0, 1, {2}), Token("b", 0, 0, {3}),
                                                     Token("a", 1, 0, {7, 0})};
  std::vector<FlowToken> all = FlowTokensFromEvents(events, 0, "");
  ASSERT_EQ(all.size(), 3u);
  std::vector<FlowToken> a = FlowTokensFromEvents(events, 0, "a");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[1].text, "w1");
  EXPECT_TRUE(a[1].is_prompt);
  ASSERT_EQ(a[1].experts.size(), 2u);
  EXPECT_EQ(a[1].experts[0].id, 7);
  EXPECT_EQ(a[1].experts[0].expert, 3);
  EXPECT_EQ(a[1].experts[0].micro, 1);
  EXPECT_FLOAT_EQ(a[1].experts[0].weight, 0.5f);
}

TEST(GifCommandTest, TokensFromGenerateResponses) {
  std::vector<moe::v1::GenerateResponse> responses(2);
  responses[0].set_text("The");
  responses[0].set_is_prompt(true);
  *responses[0].add_routing() = Routing(0, {1}, 1);
  *responses[0].add_routing() = Routing(1, {4, 5}, 1);
  responses[1].set_text(" end");
  *responses[1].add_routing() = Routing(0, {2}, 1);
  *responses[1].add_routing() = Routing(1, {3}, 1);
  std::vector<FlowToken> tokens = FlowTokensFromResponses(responses, 1);
  ASSERT_EQ(tokens.size(), 2u);
  EXPECT_EQ(tokens[0].layer, 1);
  EXPECT_EQ(tokens[0].experts.size(), 2u);
  EXPECT_EQ(tokens[1].text, " end");
}

class GifFromTraceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    trace_ = TempPath("trace");
    auto w = TraceWriter::Create(trace_, nullptr);  // bare: layout inferred
    ASSERT_TRUE(w.ok());
    for (int p = 0; p < 4; ++p) {
      ASSERT_TRUE((*w)->Write(Token("a", p, 0, {p, 15 - p})).ok());
      ASSERT_TRUE((*w)->Write(Token("a", p, 1, {p + 1})).ok());
    }
    ASSERT_TRUE((*w)->Close().ok());
    options_.trace = trace_;
    options_.gif.frames = 6;
    options_.gif.width = 240;
    options_.gif.height = 140;
  }
  std::string trace_;
  GifCommandOptions options_;
};

TEST_F(GifFromTraceTest, WritesAGif) {
  options_.gif.out = TempPath("out.gif");
  options_.layer = 1;
  ASSERT_TRUE(GifCommand(options_).ok());
  std::ifstream in(options_.gif.out, std::ios::binary);
  char magic[6] = {};
  in.read(magic, 6);
  EXPECT_EQ(std::string(magic, 6), "GIF89a");
}

TEST_F(GifFromTraceTest, WritesOnePngFrame) {
  options_.gif.out = TempPath("frame.png");
  options_.png_frame = 3;
  ASSERT_TRUE(GifCommand(options_).ok());
  std::ifstream in(options_.gif.out, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
}

TEST_F(GifFromTraceTest, ALayerBeyondTheModelNamesTheFlag) {
  options_.gif.out = TempPath("never.gif");
  options_.layer = 2;
  const absl::Status s = GifCommand(options_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("--layer: must be in [0, 2)"));
  options_.layer = 0;
  options_.request_id = "zzz";
  EXPECT_THAT(std::string(GifCommand(options_).message()),
              HasSubstr("--request_id=zzz: no token events"));
  EXPECT_FALSE(std::filesystem::exists(options_.gif.out));
}

}  // namespace
}  // namespace moe::viewer
