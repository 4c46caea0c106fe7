// Terminal dashboard layout; see terminal_view.h.
#include "clients/viewer/render/terminal_view.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "clients/viewer/render/display_text.h"
#include "clients/viewer/render/load_stats.h"
#include "clients/viewer/render/palette.h"

namespace moe::viewer {
namespace {

constexpr char kReset[] = "\x1b[0m";
constexpr char kBold[] = "\x1b[1m";
constexpr char kDim[] = "\x1b[2m";
constexpr char kRed[] = "\x1b[38;5;203m";
constexpr char kYellow[] = "\x1b[38;5;221m";
constexpr char kGreen[] = "\x1b[38;5;114m";

// Eighth blocks: horizontal bars grow to the right, sparkline columns grow upward.
constexpr const char* kPartialBlock[] = {"",       "\u258f", "\u258e", "\u258d",
                                         "\u258c", "\u258b", "\u258a", "\u2589"};
constexpr char kFullBlock[] = "\u2588";
constexpr const char* kSparkBlock[] = {" ",      "\u2581", "\u2582", "\u2583", "\u2584",
                                       "\u2585", "\u2586", "\u2587", "\u2588"};

// "L12    0.31     1.52    4096 │ " : the columns before the bars; the header matches it.
constexpr char kLayerPrefixFormat[] = "L%-4d%6.2f %8.2f %7s \u2502 ";
constexpr int kPrefixWidth = 31;
// Wider bars only stretch the picture; past this they stop helping the eye.
constexpr int kMaxCellWidth = 40;
constexpr int kTokenTextWidth = 14;

class Painter {
 public:
  explicit Painter(bool color) : color_(color) {}

  std::string operator()(absl::string_view text, absl::string_view code) const {
    if (!color_ || code.empty()) return std::string(text);
    return absl::StrCat(code, text, kReset);
  }

  // Nearest entry of the xterm 6x6x6 cube: 256-colour escapes work on more terminals than
  // 24-bit ones do.
  std::string Expert(int expert) const {
    if (!color_) return "";
    const Rgb8 c = ExpertColor(expert);
    const auto level = [](uint8_t v) { return v < 48 ? 0 : v < 115 ? 1 : (v - 35) / 40; };
    return absl::StrCat("\x1b[38;5;", 16 + 36 * level(c.r) + 6 * level(c.g) + level(c.b), "m");
  }

  // Cuts the line to the screen and closes any colour left open by the cut.
  std::string Fit(absl::string_view line, int width) const {
    std::string out = TruncateToWidth(line, width);
    if (color_) out.append(kReset);
    return out;
  }

 private:
  const bool color_;
};

std::string CompactCount(int64_t n) {
  if (n < 100000) return absl::StrCat(n);
  if (n < 10000000) return absl::StrFormat("%.0fk", n / 1e3);
  if (n < 10000000000) return absl::StrFormat("%.0fM", n / 1e6);
  return absl::StrFormat("%.0fG", n / 1e9);
}

std::string MicroLabel(int id, int granularity) {
  if (granularity <= 1) return absl::StrCat(id);
  return absl::StrCat(id / granularity, ".", id % granularity);
}

std::string HorizontalBar(int64_t count, int64_t max_count, int cell) {
  int64_t eighths =
      max_count > 0
          ? std::llround(static_cast<double>(count) * cell * 8 / static_cast<double>(max_count))
          : 0;
  // A busy expert next to an idle one must not look idle too.
  if (count > 0 && eighths == 0) eighths = 1;
  std::string bar;
  for (int64_t i = 0; i < eighths / 8; ++i) bar.append(kFullBlock);
  bar.append(kPartialBlock[eighths % 8]);
  bar.append(cell - static_cast<int>((eighths + 7) / 8), ' ');
  return bar;
}

std::string SparkColumn(int64_t count, int64_t max_count) {
  int64_t level =
      max_count > 0 ? std::llround(static_cast<double>(count) * 8 / static_cast<double>(max_count))
                    : 0;
  if (count > 0 && level == 0) level = 1;
  return kSparkBlock[level];
}

std::string HeaderLine(const DashboardState& state, const Painter& paint, int width) {
  const std::string left =
      absl::StrCat(paint("MoE top", kBold), "  model ",
                   SanitizeForDisplay(state.model.empty() ? "?" : state.model), "  target ",
                   SanitizeForDisplay(state.target.empty() ? "?" : state.target));
  std::string placement;
  if (state.placement_epoch > 0) {
    std::vector<std::string> balance;
    for (double b : state.balancedness) balance.push_back(absl::StrFormat("%.2f", b));
    placement = absl::StrCat("epoch ", state.placement_epoch, "  balance ",
                             balance.empty() ? "?" : absl::StrJoin(balance, "/"), "  ");
  }
  const std::string right =
      absl::StrCat(placement, absl::StrFormat("%.1f tok/s", state.tokens_per_second), "  ",
                   paint(absl::StrCat("dropped ", state.dropped), state.dropped > 0 ? kRed : ""));
  const int gap = width - DisplayWidth(left) - DisplayWidth(right);
  return absl::StrCat(left, std::string(std::max(gap, 2), ' '), right);
}

}  // namespace

std::vector<std::string> RenderDashboard(const DashboardState& state, int width, int height) {
  std::vector<std::string> lines;
  if (width < 1 || height < 1) return lines;
  const Painter paint(state.color);
  const int granularity = std::max(state.granularity, 1);
  const auto emit = [&](absl::string_view line) { lines.push_back(paint.Fit(line, width)); };

  emit(HeaderLine(state, paint, width));
  if (height < 2) return lines;

  std::vector<std::vector<int64_t>> base_counts;
  size_t n_base = 0;
  int64_t max_count = 0;
  for (const LayerLoadCounts& layer : state.layers) {
    base_counts.push_back(BaseExpertCounts(layer.tokens, granularity));
    n_base = std::max(n_base, base_counts.back().size());
    for (int64_t c : base_counts.back()) max_count = std::max(max_count, c);
  }
  if (state.layers.empty() || n_base == 0) {
    emit(paint("waiting for load snapshots\u2026", kDim));
  } else {
    const int avail = width - kPrefixWidth;
    const int n = static_cast<int>(n_base);
    const bool bars = 2 * n - 1 <= avail;
    const int cell = bars ? std::min((avail + 1) / n - 1, kMaxCellWidth) : 1;

    std::string header =
        absl::StrFormat("%-5s%6s %8s %7s \u2502 ", "layer", "cv", "max/mean", "tokens");
    if (bars) {
      for (int e = 0; e < n; ++e) {
        std::string label = absl::StrCat("e", e);
        if (static_cast<int>(label.size()) > cell) label = absl::StrCat(e);
        if (static_cast<int>(label.size()) > cell) label.clear();
        absl::StrAppend(&header, e > 0 ? " " : "", PadToWidth(label, cell));
      }
    } else {
      absl::StrAppend(&header, "experts 0-", n - 1, ", one column each");
    }
    emit(paint(header, kDim));

    const int room = height - static_cast<int>(lines.size());
    const int n_layers = static_cast<int>(state.layers.size());
    const int shown = n_layers <= room ? n_layers : std::max(room - 1, 0);
    for (int i = 0; i < shown; ++i) {
      const std::vector<int64_t>& counts = base_counts[i];
      const LoadBalance balance = ComputeLoadBalance(counts);
      const char* cv_color = balance.cv < 0.25 ? kGreen : balance.cv < 0.6 ? kYellow : kRed;
      std::string line = absl::StrFormat("L%-4d", state.layers[i].layer);
      absl::StrAppend(&line, paint(absl::StrFormat("%6.2f", balance.cv), cv_color),
                      absl::StrFormat(" %8.2f %7s \u2502 ", balance.max_over_mean,
                                      CompactCount(balance.total)));
      for (size_t e = 0; e < counts.size(); ++e) {
        const std::string block =
            bars ? HorizontalBar(counts[e], max_count, cell) : SparkColumn(counts[e], max_count);
        absl::StrAppend(&line, bars && e > 0 ? " " : "",
                        paint(block, paint.Expert(static_cast<int>(e))));
      }
      emit(line);
    }
    if (shown < n_layers && room > 0) {
      emit(paint(
          absl::StrCat("\u2026 ", n_layers - shown, " more layers (taller window shows them)"),
          kDim));
    }
  }

  // Recent tokens only when at least one fits under a blank line and a title.
  const int room = height - static_cast<int>(lines.size());
  if (room >= 3) {
    lines.push_back(paint.Fit("", width));
    emit(paint("recent tokens, newest first", kBold));
    if (state.recent.empty()) emit(paint("  none yet", kDim));
    const int fit = std::min<int>(room - 2, static_cast<int>(state.recent.size()));
    for (int i = 0; i < fit; ++i) {
      const RecentToken& token = state.recent[state.recent.size() - 1 - i];
      std::string line = absl::StrCat(
          "  ",
          PadToWidth(
              absl::StrCat(
                  "\"", TruncateToWidth(SanitizeForDisplay(token.text), kTokenTextWidth - 2), "\""),
              kTokenTextWidth),
          " ", paint(token.is_prompt ? "prompt" : "gen   ", kDim));
      for (const TokenLayerExperts& layer : token.layers) {
        std::vector<std::string> ids;
        for (int id : layer.experts) {
          ids.push_back(paint(MicroLabel(id, granularity), paint.Expert(id / granularity)));
        }
        absl::StrAppend(&line, "  L", layer.layer, " ", absl::StrJoin(ids, ","));
      }
      emit(line);
    }
  }
  return lines;
}

}  // namespace moe::viewer
