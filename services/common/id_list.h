// The id-list syntax shared by cluster files and command-line flags: comma-separated ids and
// inclusive ranges, "0-3,6". One reader, so a cluster file and a flag accept the same text.
// Torch- and gRPC-free.
#ifndef MOE_SERVICES_COMMON_ID_LIST_H_
#define MOE_SERVICES_COMMON_ID_LIST_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe {

// Reads "0-3,6" into sorted, unique ids. With limit > 0 every id must be in [0, limit); with
// limit == 0 ids are only bounded below by 0 (and one range may span at most 100,000 ids). The
// word "all" is not read here: what it means (every id, or no filter) is the caller's.
// Errors are INVALID_ARGUMENT prefixed with `field`, e.g.
// `--layers: "3-x" is not a number or range (want e.g. "0-3,6")`.
absl::StatusOr<std::vector<int>> ParseIdList(absl::string_view text, absl::string_view field,
                                             int limit);

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_ID_LIST_H_
