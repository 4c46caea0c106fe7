// Prints generated text and the routing table (token x layer -> experts and weights) the same
// way for the embedded runner and the remote cluster.
#ifndef MOE_CLIENTS_MOECTL_ROUTING_TABLE_H_
#define MOE_CLIENTS_MOECTL_ROUTING_TABLE_H_

#include <cstdio>
#include <string>
#include <vector>

namespace moe::cli {

struct ExpertCell {
  int id;
  float weight;
  std::string pool;
};

struct RoutingRow {
  int position = 0;
  std::string text;
  bool is_prompt = false;
  std::vector<std::vector<ExpertCell>> layers;  // per layer, chosen experts
};

// "  12  ' the'      L0 3:0.62 5:0.38 | L1 ..." ; m > 1 prints ids as expert.micro.
std::string FormatRoutingRow(const RoutingRow& row, int granularity, bool show_pools);

}  // namespace moe::cli

#endif  // MOE_CLIENTS_MOECTL_ROUTING_TABLE_H_
