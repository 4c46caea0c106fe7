// Layout of the terminal dashboard: bars, balance figures, and the width and height it must keep.
#include "clients/viewer/render/terminal_view.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "clients/viewer/render/display_text.h"
#include "gtest/gtest.h"

namespace moe::viewer {
namespace {

constexpr int kPrefixColumns = 31;  // "L0       0.45     1.60      20 │ "

// Code points of a line, so a test can look at one screen column at a time.
std::u32string Columns(const std::string& s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    const int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    char32_t cp = len == 1 ? c : c & (0x3F >> (len - 1));
    for (int j = 1; j < len; ++j) cp = (cp << 6) | (s[i + j] & 0x3F);
    out.push_back(cp);
    i += len;
  }
  return out;
}

const std::string* FindLine(const std::vector<std::string>& lines, absl::string_view prefix) {
  for (const std::string& line : lines) {
    if (absl::StartsWith(line, prefix)) return &line;
  }
  return nullptr;
}

// Layers whose base-expert loads are {2,4,6,8}, {16,0,0,0} and {1,0,0,0}, given per micro-expert
// with two micro-experts each.
DashboardState ThreeLayerState() {
  DashboardState state;
  state.model = "brown-moe";
  state.target = "127.0.0.1:50050";
  state.granularity = 2;
  state.layers = {
      {0, {1, 1, 4, 0, 3, 3, 0, 8}}, {1, {10, 6, 0, 0, 0, 0, 0, 0}}, {2, {0, 1, 0, 0, 0, 0, 0, 0}}};
  state.tokens_per_second = 12.5;
  state.recent = {{"old", true, {{0, {1, 6}}}}, {" the", false, {{0, {2, 7}}, {1, {0, 1}}}}};
  state.dropped = 3;
  return state;
}

TEST(RenderDashboardTest, BarLengthsAreProportionalToCounts) {
  // Four experts of 8 columns and a space each: the bars start at kPrefixColumns.
  const int width = kPrefixColumns + 4 * 9 - 1;
  const std::vector<std::string> lines = RenderDashboard(ThreeLayerState(), width, 40);
  const auto cell = [](const std::string& line, int expert) {
    return Columns(line).substr(kPrefixColumns + expert * 9, 8);
  };
  const std::string* l0 = FindLine(lines, "L0 ");
  const std::string* l1 = FindLine(lines, "L1 ");
  const std::string* l2 = FindLine(lines, "L2 ");
  ASSERT_NE(l0, nullptr);
  ASSERT_NE(l1, nullptr);
  ASSERT_NE(l2, nullptr);
  // One scale for all layers: the largest count (16) fills the 8-column cell, so each token is
  // four eighths of a column.
  EXPECT_EQ(cell(*l0, 0), U"\u2588       ");
  EXPECT_EQ(cell(*l0, 1), U"\u2588\u2588      ");
  EXPECT_EQ(cell(*l0, 2), U"\u2588\u2588\u2588     ");
  EXPECT_EQ(cell(*l0, 3), U"\u2588\u2588\u2588\u2588    ");
  EXPECT_EQ(cell(*l1, 0), U"\u2588\u2588\u2588\u2588\u2588\u2588\u2588\u2588");
  EXPECT_EQ(cell(*l1, 1), U"        ");
  EXPECT_EQ(cell(*l2, 0), U"\u258c       ");  // half a column
}

TEST(RenderDashboardTest, ShowsHandComputedBalanceFigures) {
  const std::vector<std::string> lines = RenderDashboard(ThreeLayerState(), 100, 40);
  const std::string* l0 = FindLine(lines, "L0 ");
  const std::string* l1 = FindLine(lines, "L1 ");
  ASSERT_NE(l0, nullptr);
  ASSERT_NE(l1, nullptr);
  // {2,4,6,8}: mean 5, population std sqrt(5): cv 0.447; max/mean 8/5.
  EXPECT_TRUE(absl::StartsWith(*l0, "L0     0.45     1.60      20 \u2502")) << *l0;
  // {16,0,0,0}: cv sqrt(3) = 1.732; max/mean 4.
  EXPECT_TRUE(absl::StartsWith(*l1, "L1     1.73     4.00      16 \u2502")) << *l1;
}

TEST(RenderDashboardTest, HeaderNamesModelTargetRateAndDrops) {
  const std::vector<std::string> lines = RenderDashboard(ThreeLayerState(), 100, 40);
  ASSERT_FALSE(lines.empty());
  EXPECT_TRUE(absl::StrContains(lines[0], "brown-moe")) << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], "127.0.0.1:50050")) << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], "12.5 tok/s")) << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], "dropped 3")) << lines[0];
  EXPECT_EQ(DisplayWidth(lines[0]), 100);  // the rate sits at the right edge
}

TEST(RenderDashboardTest, HeaderShowsThePlacementEpochAndBalanceOnceKnown) {
  DashboardState state = ThreeLayerState();
  EXPECT_FALSE(absl::StrContains(RenderDashboard(state, 120, 40)[0], "epoch"));
  state.placement_epoch = 12;
  state.balancedness = {0.984, 0.5};
  const std::string header = RenderDashboard(state, 120, 40)[0];
  EXPECT_TRUE(absl::StrContains(header, "epoch 12  balance 0.98/0.50")) << header;
  EXPECT_EQ(DisplayWidth(header), 120);
}

TEST(RenderDashboardTest, RecentTokensNewestFirstWithMicroExperts) {
  const std::vector<std::string> lines = RenderDashboard(ThreeLayerState(), 100, 40);
  int newest = -1;
  int oldest = -1;
  for (int i = 0; i < static_cast<int>(lines.size()); ++i) {
    if (absl::StrContains(lines[i], "\" the\"")) newest = i;
    if (absl::StrContains(lines[i], "\"old\"")) oldest = i;
  }
  ASSERT_GE(newest, 0);
  ASSERT_GE(oldest, 0);
  EXPECT_LT(newest, oldest);
  // Flat ids 2 and 7 with m = 2 are micro 0 of expert 1 and micro 1 of expert 3.
  EXPECT_TRUE(absl::StrContains(lines[newest], "L0 1.0,3.1  L1 0.0,0.1")) << lines[newest];
  EXPECT_TRUE(absl::StrContains(lines[oldest], "prompt")) << lines[oldest];
}

TEST(RenderDashboardTest, NeverExceedsWidthOrHeight) {
  DashboardState state = ThreeLayerState();
  state.model = "\u65e5\u672c\u8a9e-model\nwith newline";
  state.recent.push_back({"\xe2\x82 broken \t\u65e5\u672c\u8a9e\u65e5\u672c\u8a9e",
                          false,
                          {{0, {0, 1, 2, 3}}, {1, {4, 5}}, {2, {6, 7}}}});
  DashboardState wide = state;
  wide.layers.push_back({3, std::vector<int64_t>(128, 5)});  // 64 experts: sparkline columns
  for (const DashboardState* s : {&state, &wide}) {
    for (bool color : {false, true}) {
      DashboardState st = *s;
      st.color = color;
      for (int width = 1; width <= 130; ++width) {
        for (int height = 1; height <= 14; ++height) {
          const std::vector<std::string> lines = RenderDashboard(st, width, height);
          ASSERT_LE(static_cast<int>(lines.size()), height);
          for (const std::string& line : lines) {
            ASSERT_LE(DisplayWidth(line), width)
                << "width " << width << " height " << height << " color " << color << ": " << line;
            if (color) {
              ASSERT_TRUE(absl::EndsWith(line, "\x1b[0m")) << line;
            }
            ASSERT_EQ(line.find('\n'), std::string::npos);
          }
        }
      }
    }
  }
}

TEST(RenderDashboardTest, TooManyLayersForHeightSaysHowManyAreHidden) {
  DashboardState state = ThreeLayerState();
  const std::vector<std::string> lines = RenderDashboard(state, 100, 4);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_TRUE(absl::StartsWith(lines[2], "L0 ")) << lines[2];
  EXPECT_TRUE(absl::StrContains(lines[3], "2 more layers")) << lines[3];
}

TEST(RenderDashboardTest, ManyExpertsBecomeSparklineColumns) {
  DashboardState state;
  std::vector<int64_t> tokens(64, 0);
  tokens[0] = 8;
  tokens[63] = 4;
  state.layers = {{0, tokens}};
  const std::vector<std::string> lines = RenderDashboard(state, 100, 10);
  const std::string* l0 = FindLine(lines, "L0 ");
  ASSERT_NE(l0, nullptr);
  const std::u32string columns = Columns(*l0).substr(kPrefixColumns);
  ASSERT_EQ(columns.size(), 64u);
  EXPECT_EQ(columns[0], U'\u2588');   // full height
  EXPECT_EQ(columns[1], U' ');        // idle
  EXPECT_EQ(columns[63], U'\u2584');  // half height
}

TEST(RenderDashboardTest, NoLayersYetSaysWaiting) {
  const std::vector<std::string> lines = RenderDashboard(DashboardState{}, 80, 10);
  ASSERT_GE(lines.size(), 2u);
  EXPECT_TRUE(absl::StrContains(lines[1], "waiting")) << lines[1];
}

TEST(RenderDashboardTest, ColourAddsEscapesButNoColumns) {
  DashboardState plain = ThreeLayerState();
  DashboardState colored = plain;
  colored.color = true;
  const std::vector<std::string> a = RenderDashboard(plain, 90, 20);
  const std::vector<std::string> b = RenderDashboard(colored, 90, 20);
  ASSERT_EQ(a.size(), b.size());
  bool any_escape = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(DisplayWidth(a[i]), DisplayWidth(b[i])) << i;
    any_escape |= absl::StrContains(b[i], "\x1b[38;5;");
    EXPECT_FALSE(absl::StrContains(a[i], "\x1b")) << a[i];
  }
  EXPECT_TRUE(any_escape);
}

TEST(RenderDashboardTest, NothingForEmptyScreen) {
  EXPECT_TRUE(RenderDashboard(ThreeLayerState(), 0, 10).empty());
  EXPECT_TRUE(RenderDashboard(ThreeLayerState(), 80, 0).empty());
}

}  // namespace
}  // namespace moe::viewer
