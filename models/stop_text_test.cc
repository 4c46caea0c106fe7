#include "models/stop_text.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace moe {
namespace {

// Feeds pieces; returns everything shown and whether it stopped.
std::pair<std::string, bool> Feed(StopText& st, const std::vector<std::string>& pieces) {
  std::string shown;
  for (const std::string& p : pieces) {
    StopText::Step s = st.Add(p);
    shown += s.text;
    if (s.stopped) return {shown, true};
  }
  return {shown + st.Flush(), false};
}

TEST(StopTextTest, WithoutStopsTextPassesThroughAtOnce) {
  StopText st;
  EXPECT_EQ(st.Add("ab").text, "ab");
  EXPECT_EQ(st.Flush(), "");
}

TEST(StopTextTest, EndsBeforeTheStopSequenceSpanningTokens) {
  StopText st({"\n\n"});
  EXPECT_EQ(Feed(st, {"The end.", "\n", "\nMore"}), std::make_pair(std::string("The end."), true));
}

TEST(StopTextTest, NeverShowsAPossibleStartOfAStop) {
  StopText st({"United States"});
  StopText::Step a = st.Add("the Unit");
  EXPECT_EQ(a.text, "the ");  // "Unit" might begin the stop sequence
  StopText::Step b = st.Add("ed Kingdom");
  EXPECT_EQ(b.text, "United Kingdom");  // it did not
  EXPECT_FALSE(b.stopped);
}

TEST(StopTextTest, TheEarliestOfSeveralStopsWins) {
  StopText st({"xyz", "b"});
  EXPECT_EQ(Feed(st, {"a", "bxyz"}), std::make_pair(std::string("a"), true));
}

TEST(StopTextTest, HeldTextComesOutAtTheEnd) {
  StopText st({"!!"});
  EXPECT_EQ(Feed(st, {"wow", "!"}), std::make_pair(std::string("wow!"), false));
}

TEST(StopTextTest, NothingAfterTheStop) {
  StopText st({"."});
  EXPECT_TRUE(st.Add("a.b").stopped);
  EXPECT_EQ(st.Add("more").text, "");
  EXPECT_EQ(st.Flush(), "");
}

}  // namespace
}  // namespace moe
