// The cluster file and the id lists inside it, on outside bytes, against the shipped model's
// config: a parse either fails with a clear error or yields a placement where names and addresses
// are unique, every id is in range, and every expert is hosted (or no pool is listed at all: a
// router may start empty and fill its placement from joins).
#include <set>

#include "models/config.h"
#include "services/common/id_list.h"
#include "services/common/placement.h"
#include "tests/fuzz/fuzz_util.h"

namespace {
const moe::ModelConfig* config = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  auto loaded = moe::LoadConfigFile(moe::fuzz::SourcePath("models/brown-moe/config.json"));
  FUZZ_CHECK(loaded.ok(), loaded.status().ToString());
  config = new moe::ModelConfig(*loaded);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moe::fuzz::ByteReader in(data, size);
  if (in.Byte() % 4 == 0) {
    const int limit = in.Byte();
    const std::string text = in.Rest();
    absl::StatusOr<std::vector<int>> ids = moe::ParseIdList(text, "pools[0].experts", limit);
    if (!ids.ok()) {
      FUZZ_CHECK(moe::fuzz::IsClearError(ids.status()), ids.status().ToString());
      return 0;
    }
    for (size_t i = 0; i < ids->size(); ++i) {
      FUZZ_CHECK((*ids)[i] >= 0 && (limit == 0 || (*ids)[i] < limit), "id out of range");
      FUZZ_CHECK(i == 0 || (*ids)[i - 1] < (*ids)[i], "ids not sorted and unique");
    }
    return 0;
  }
  absl::StatusOr<moe::ClusterSpec> cluster = moe::ParseCluster(in.Rest(), *config);
  if (!cluster.ok()) {
    FUZZ_CHECK(moe::fuzz::IsClearError(cluster.status()), cluster.status().ToString());
    return 0;
  }
  std::set<std::string> names, addresses;
  for (const moe::PoolSpec& pool : cluster->pools) {
    FUZZ_CHECK(names.insert(pool.name).second, "duplicate pool name " + pool.name);
    FUZZ_CHECK(addresses.insert(pool.address).second, "duplicate address " + pool.address);
  }
  if (cluster->pools.empty()) return 0;
  for (int layer = 0; layer < config->n_layers; ++layer) {
    for (int e = 0; e < config->n_experts; ++e) {
      FUZZ_CHECK(!cluster->Hosts(layer, e, false).empty(), "an expert is hosted nowhere");
    }
    for (int s = 0; s < config->n_shared; ++s) {
      FUZZ_CHECK(!cluster->Hosts(layer, s, true).empty(), "a shared expert is hosted nowhere");
    }
  }
  return 0;
}
