// Column counting and sanitizing of token text; see display_text.h.
#include "clients/viewer/render/display_text.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>

#include "models/utf8.h"

namespace moe::viewer {
namespace {

constexpr char32_t kInvalid = 0xFFFFFFFF;

struct Range {
  char32_t first;
  char32_t last;
};

// Not the full Unicode tables: the ranges model vocabularies actually contain (combining
// accents, CJK, Hangul, full-width forms, emoji), which is where a wrong width shows.
constexpr Range kZeroWidth[] = {
    {0x0300, 0x036F}, {0x0483, 0x0489}, {0x0591, 0x05BD},   {0x0610, 0x061A}, {0x064B, 0x065F},
    {0x0E31, 0x0E31}, {0x0E34, 0x0E3A}, {0x0E47, 0x0E4E},   {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF},
    {0x200B, 0x200F}, {0x202A, 0x202E}, {0x2060, 0x2064},   {0x20D0, 0x20FF}, {0xFE00, 0xFE0F},
    {0xFE20, 0xFE2F}, {0xFEFF, 0xFEFF}, {0xE0100, 0xE01EF},
};

constexpr Range kWide[] = {
    {0x1100, 0x115F},   {0x231A, 0x231B},   {0x2329, 0x232A},   {0x23E9, 0x23EC},
    {0x23F0, 0x23F0},   {0x23F3, 0x23F3},   {0x25FD, 0x25FE},   {0x2614, 0x2615},
    {0x2648, 0x2653},   {0x267F, 0x267F},   {0x2693, 0x2693},   {0x26A1, 0x26A1},
    {0x26AA, 0x26AB},   {0x26BD, 0x26BE},   {0x26C4, 0x26C5},   {0x26CE, 0x26CE},
    {0x26D4, 0x26D4},   {0x26EA, 0x26EA},   {0x26F2, 0x26F3},   {0x26F5, 0x26F5},
    {0x26FA, 0x26FA},   {0x26FD, 0x26FD},   {0x2705, 0x2705},   {0x270A, 0x270B},
    {0x2728, 0x2728},   {0x274C, 0x274C},   {0x274E, 0x274E},   {0x2753, 0x2755},
    {0x2757, 0x2757},   {0x2795, 0x2797},   {0x27B0, 0x27B0},   {0x27BF, 0x27BF},
    {0x2B1B, 0x2B1C},   {0x2B50, 0x2B50},   {0x2B55, 0x2B55},   {0x2E80, 0x303E},
    {0x3041, 0x33FF},   {0x3400, 0x4DBF},   {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},
    {0xA960, 0xA97F},   {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},   {0xFE10, 0xFE19},
    {0xFE30, 0xFE6F},   {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},   {0x1F004, 0x1F004},
    {0x1F0CF, 0x1F0CF}, {0x1F18E, 0x1F18E}, {0x1F191, 0x1F19A}, {0x1F200, 0x1F251},
    {0x1F300, 0x1F64F}, {0x1F680, 0x1F6FF}, {0x1F900, 0x1F9FF}, {0x1FA70, 0x1FAFF},
    {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
};

template <size_t N>
bool InRanges(const Range (&ranges)[N], char32_t c) {
  const Range* it = std::upper_bound(std::begin(ranges), std::end(ranges), c,
                                     [](char32_t v, const Range& r) { return v < r.first; });
  return it != std::begin(ranges) && c <= std::prev(it)->last;
}

// The code point at text[*pos], advancing *pos past it; a byte that starts no valid sequence gives
// kInvalid and advances one byte, so decoding always makes progress.
char32_t NextCodePoint(absl::string_view text, size_t* pos) {
  const Utf8Char ch = DecodeUtf8(std::string_view(text.data(), text.size()), *pos);
  if (ch.length == 0) {
    ++*pos;
    return kInvalid;
  }
  *pos += ch.length;
  return ch.code_point;
}

bool IsControl(char32_t c) { return c < 0x20 || (c >= 0x7F && c < 0xA0); }

int CodePointWidth(char32_t c) {
  if (c == kInvalid) return 1;
  if (IsControl(c) || InRanges(kZeroWidth, c)) return 0;
  return InRanges(kWide, c) ? 2 : 1;
}

// Length of the ANSI escape starting at text[pos] (text[pos] == ESC): a CSI sequence through its
// final byte, otherwise ESC and the byte after it.
size_t EscapeLength(absl::string_view text, size_t pos) {
  if (pos + 1 >= text.size()) return 1;
  if (text[pos + 1] != '[') return 2;
  size_t i = pos + 2;
  while (i < text.size() && !(text[i] >= 0x40 && text[i] <= 0x7E)) ++i;
  return std::min(i + 1, text.size()) - pos;
}

}  // namespace

std::string SanitizeForDisplay(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const char32_t c = NextCodePoint(text, &pos);
    if (c == kInvalid) {
      AppendUtf8(0xFFFD, &out);
    } else if (c == '\n') {
      AppendUtf8(0x21B5, &out);  // ↵
    } else if (c == '\t') {
      AppendUtf8(0x2192, &out);  // →
    } else if (c == '\r') {
      AppendUtf8(0x240D, &out);  // ␍
    } else if (IsControl(c)) {
      AppendUtf8(0x00B7, &out);  // ·
    } else {
      AppendUtf8(c, &out);
    }
  }
  return out;
}

int DisplayWidth(absl::string_view text) {
  int width = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (text[pos] == '\x1b') {
      pos += EscapeLength(text, pos);
      continue;
    }
    width += CodePointWidth(NextCodePoint(text, &pos));
  }
  return width;
}

std::string TruncateToWidth(absl::string_view text, int width) {
  if (width <= 0) return "";
  if (DisplayWidth(text) <= width) return std::string(text);
  // Something is cut, so keep one column for the ellipsis.
  const int budget = width - 1;
  std::string out;
  int used = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (text[pos] == '\x1b') {
      const size_t len = EscapeLength(text, pos);
      out.append(text.data() + pos, len);
      pos += len;
      continue;
    }
    const size_t start = pos;
    const int w = CodePointWidth(NextCodePoint(text, &pos));
    if (used + w > budget) break;
    used += w;
    out.append(text.data() + start, pos - start);
  }
  out.append("\u2026");
  return out;
}

std::string PadToWidth(absl::string_view text, int width) {
  std::string out = TruncateToWidth(text, width);
  const int pad = width - DisplayWidth(out);
  if (pad > 0) out.append(pad, ' ');
  return out;
}

}  // namespace moe::viewer
