#include "models/utf8.h"

#include <gtest/gtest.h>

namespace moe {
namespace {

TEST(Utf8Test, DecodesEveryLengthAndRoundTrips) {
  for (char32_t c : {U'a', U'\u00e9', U'\u20ac', U'\U0001F600', U'\U0010FFFF'}) {
    std::string s;
    AppendUtf8(c, &s);
    const Utf8Char d = DecodeUtf8(s, 0);
    EXPECT_EQ(d.code_point, c);
    EXPECT_EQ(d.length, s.size());
    EXPECT_FALSE(d.truncated);
  }
}

TEST(Utf8Test, RefusesOverlongSurrogateAndStrayBytes) {
  for (std::string_view bad :
       {"\xc0\xaf", "\xed\xa0\x80", "\x80", "\xff", "\xf4\x90\x80\x80", "\xe2\x28\xa1"}) {
    const Utf8Char d = DecodeUtf8(bad, 0);
    EXPECT_EQ(d.length, 0u) << bad;
    EXPECT_FALSE(d.truncated) << bad;
  }
}

TEST(Utf8Test, SaysWhenTheTextEndsInsideAValidSequence) {
  const Utf8Char d = DecodeUtf8("\xe2\x82", 0);  // the first two bytes of the euro sign
  EXPECT_EQ(d.length, 0u);
  EXPECT_TRUE(d.truncated);
}

TEST(Utf8Test, SanitizeReplacesEachInvalidByte) {
  EXPECT_EQ(SanitizeUtf8("ok \xe2\x82\xac"), "ok \xe2\x82\xac");
  EXPECT_EQ(SanitizeUtf8("a\xff"
                         "b"),
            "a\xef\xbf\xbd"
            "b");
  EXPECT_EQ(SanitizeUtf8("\xe2\x82"), "\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(SanitizeUtf8("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // surrogate
}

}  // namespace
}  // namespace moe
