#include "clients/moectl/routing_table.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace moe::cli {

std::string FormatRoutingRow(const RoutingRow& row, int granularity, bool show_pools) {
  std::string text;
  for (char c : row.text) {
    if (c == '\n') {
      text += "\\n";
    } else if (c == '\t') {
      text += "\\t";
    } else {
      text += c;
    }
  }
  std::string out = absl::StrFormat("%5d %s %-14s", row.position, row.is_prompt ? "P" : "G",
                                    absl::StrCat("'", text, "'"));
  for (size_t l = 0; l < row.layers.size(); ++l) {
    absl::StrAppend(&out, l == 0 ? " " : " |", " L", l);
    for (const ExpertCell& e : row.layers[l]) {
      std::string id = granularity > 1 ? absl::StrCat(e.id / granularity, ".", e.id % granularity)
                                       : absl::StrCat(e.id);
      absl::StrAppend(&out, " ", id, ":", absl::StrFormat("%.2f", e.weight));
      if (show_pools && !e.pool.empty()) absl::StrAppend(&out, "@", e.pool);
    }
  }
  return out;
}

}  // namespace moe::cli
