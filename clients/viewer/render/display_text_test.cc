// Column counting, truncation and sanitizing of token text.
#include "clients/viewer/render/display_text.h"

#include "gtest/gtest.h"

namespace moe::viewer {
namespace {

TEST(SanitizeForDisplayTest, ControlsBecomeVisibleSymbols) {
  EXPECT_EQ(SanitizeForDisplay("a\nb\tc\rd"), "a\u21b5b\u2192c\u240dd");
  EXPECT_EQ(SanitizeForDisplay(std::string("x\0y\x7f", 4)), "x\u00b7y\u00b7");
}

TEST(SanitizeForDisplayTest, InvalidUtf8BecomesReplacementCharacters) {
  EXPECT_EQ(SanitizeForDisplay("\xff"), "\ufffd");
  // A byte-fallback token can be the first two bytes of a three-byte character.
  EXPECT_EQ(SanitizeForDisplay("\xe2\x82"), "\ufffd\ufffd");
  // Overlong encoding of '/' and a UTF-16 surrogate are not valid UTF-8 either.
  EXPECT_EQ(SanitizeForDisplay("\xc0\xaf"), "\ufffd\ufffd");
  EXPECT_EQ(SanitizeForDisplay("\xed\xa0\x80"), "\ufffd\ufffd\ufffd");
}

TEST(SanitizeForDisplayTest, ValidTextIsUnchanged) {
  EXPECT_EQ(SanitizeForDisplay(" the caf\u00e9 \u65e5\u672c \U0001f600"),
            " the caf\u00e9 \u65e5\u672c \U0001f600");
}

TEST(DisplayWidthTest, CountsColumnsNotBytes) {
  EXPECT_EQ(DisplayWidth("abc"), 3);
  EXPECT_EQ(DisplayWidth("\u2588\u258c"), 2);            // block elements: 3 bytes, 1 column
  EXPECT_EQ(DisplayWidth("\u65e5\u672c"), 4);            // CJK: 2 columns each
  EXPECT_EQ(DisplayWidth("e\u0301"), 1);                 // combining accent takes none
  EXPECT_EQ(DisplayWidth("\U0001f600"), 2);              // emoji
  EXPECT_EQ(DisplayWidth("\x1b[38;5;12mab\x1b[0m"), 2);  // escapes take none
}

TEST(TruncateToWidthTest, CutsWithEllipsisInTheLastColumn) {
  EXPECT_EQ(TruncateToWidth("hello world", 5), "hell\u2026");
  EXPECT_EQ(TruncateToWidth("hello", 5), "hello");
  EXPECT_EQ(TruncateToWidth("hello", 0), "");
}

TEST(TruncateToWidthTest, NeverSplitsAWideCharacter) {
  const std::string cut = TruncateToWidth("\u65e5\u672c\u8a9e", 4);
  EXPECT_EQ(cut, "\u65e5\u2026");
  EXPECT_LE(DisplayWidth(cut), 4);
}

TEST(TruncateToWidthTest, KeepsEscapesOutOfTheCount) {
  const std::string cut = TruncateToWidth("\x1b[1mabcdef\x1b[0m", 4);
  EXPECT_EQ(cut, "\x1b[1mabc\u2026");
  EXPECT_EQ(DisplayWidth(cut), 4);
}

TEST(PadToWidthTest, PadsToExactWidth) {
  EXPECT_EQ(PadToWidth("ab", 4), "ab  ");
  EXPECT_EQ(PadToWidth("\u65e5", 3), "\u65e5 ");
  EXPECT_EQ(DisplayWidth(PadToWidth("abcdefgh", 4)), 4);
}

}  // namespace
}  // namespace moe::viewer
