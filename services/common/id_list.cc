#include "services/common/id_list.h"

#include <algorithm>
#include <limits>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace moe {
namespace {

constexpr int64_t kMaxUnboundedSpan = 100000;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

}  // namespace

absl::StatusOr<std::vector<int>> ParseIdList(absl::string_view text, absl::string_view field,
                                             int limit) {
  std::set<int> ids;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    const size_t dash = part.find('-');
    const absl::string_view lo_text = part.substr(0, dash);
    const absl::string_view hi_text =
        dash == absl::string_view::npos ? lo_text : part.substr(dash + 1);
    int64_t lo = 0;
    int64_t hi = 0;
    if (!absl::SimpleAtoi(lo_text, &lo) || !absl::SimpleAtoi(hi_text, &hi) || lo < 0) {
      return Invalid(field,
                     absl::StrCat("\"", part, "\" is not a number or range (want e.g. \"0-3,6\")"));
    }
    if (hi < lo) return Invalid(field, absl::StrCat("range \"", part, "\" is empty"));
    if (hi > std::numeric_limits<int>::max()) {
      return Invalid(field, absl::StrCat(hi, " is too large an id"));
    }
    if (limit > 0 && hi >= limit) {
      // The first id of the range that is out.
      return Invalid(field,
                     absl::StrCat(std::max<int64_t>(lo, limit), " out of range [0, ", limit, ")"));
    }
    if (limit <= 0 && hi - lo >= kMaxUnboundedSpan) {
      return Invalid(field, absl::StrCat("range \"", part, "\" is too large"));
    }
    for (int64_t i = lo; i <= hi; ++i) ids.insert(static_cast<int>(i));
  }
  return std::vector<int>(ids.begin(), ids.end());
}

}  // namespace moe
