#include "services/common/id_list.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace moe {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(IdListTest, ReadsIdsAndRangesSortedAndUnique) {
  EXPECT_THAT(*ParseIdList("0-3,6", "f", 8), ElementsAre(0, 1, 2, 3, 6));
  EXPECT_THAT(*ParseIdList(" 6, 2-3 ,2 ", "f", 8), ElementsAre(2, 3, 6));
  EXPECT_THAT(*ParseIdList("7", "f", 0), ElementsAre(7));
}

TEST(IdListTest, ErrorsNameTheFieldAndThePart) {
  for (const char* bad : {"a", "1-", "-1", "1,,2", "", "1-2-3", "x-2"}) {
    absl::StatusOr<std::vector<int>> r = ParseIdList(bad, "pools[0].experts", 8);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("pools[0].experts: ")) << bad;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("want e.g. \"0-3,6\"")) << bad;
  }
  EXPECT_THAT(Message(ParseIdList("3-1", "--layers", 0).status()),
              HasSubstr("--layers: range \"3-1\" is empty"));
}

TEST(IdListTest, LimitBoundsEveryId) {
  EXPECT_THAT(Message(ParseIdList("6-9", "experts", 8).status()),
              HasSubstr("experts: 8 out of range [0, 8)"));
  EXPECT_THAT(Message(ParseIdList("1,12-14", "experts", 8).status()),
              HasSubstr("experts: 12 out of range [0, 8)"));
  EXPECT_TRUE(ParseIdList("0-7", "experts", 8).ok());
}

TEST(IdListTest, UnboundedRangesAreCapped) {
  EXPECT_THAT(Message(ParseIdList("0-2000000000", "--layers", 0).status()),
              HasSubstr("is too large"));
  EXPECT_EQ(ParseIdList("0-99999", "--layers", 0)->size(), 100000u);
}

TEST(IdListTest, IdsBeyondAnIntAreRefusedNotWrapped) {
  EXPECT_THAT(Message(ParseIdList("8333833833", "--layers", 0).status()),
              HasSubstr("--layers: 8333833833 is too large an id"));
  EXPECT_THAT(Message(ParseIdList("2147483647-2147483648", "--layers", 0).status()),
              HasSubstr("too large"));
}

}  // namespace
}  // namespace moe
