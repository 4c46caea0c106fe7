#include "services/common/placement.h"

#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "services/common/host_port.h"
#include "services/common/id_list.h"

namespace moe {
namespace {

// "all", [1, 2], "0-3,6" -> ids in [0, limit).
absl::StatusOr<std::vector<int>> ParseIds(const nlohmann::json& j, int limit,
                                          const std::string& field) {
  std::vector<int> ids;
  auto check = [&](int64_t v) -> absl::Status {
    if (v < 0 || v >= limit) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", v, " out of range [0, ", limit, ")"));
    }
    ids.push_back(static_cast<int>(v));
    return absl::OkStatus();
  };
  if (j.is_null()) return ids;
  if (j.is_string()) {
    const std::string text = j.get<std::string>();
    if (text == "all") {
      for (int i = 0; i < limit; ++i) ids.push_back(i);
      return ids;
    }
    return ParseIdList(text, field, limit);
  }
  if (j.is_array()) {
    for (const auto& v : j) {
      if (!v.is_number_integer()) {
        return absl::InvalidArgumentError(absl::StrCat(field, ": list entries must be integers"));
      }
      if (absl::Status st = check(v.get<int64_t>()); !st.ok()) return st;
    }
    return ids;
  }
  if (j.is_number_integer()) {
    if (absl::Status st = check(j.get<int64_t>()); !st.ok()) return st;
    return ids;
  }
  return absl::InvalidArgumentError(absl::StrCat(field, ": expected \"all\", a range or a list"));
}

absl::StatusOr<std::string> Address(const nlohmann::json& j, const std::string& field) {
  if (!j.is_object() || !j.contains("address") || !j["address"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".address: required HOST:PORT"));
  }
  std::string a = j["address"].get<std::string>();
  if (absl::Status s = CheckDialable(a, absl::StrCat(field, ".address")); !s.ok()) return s;
  return a;
}

}  // namespace

std::vector<int> ClusterSpec::Hosts(int layer, int expert, bool is_shared) const {
  std::vector<int> out;
  for (size_t i = 0; i < pools.size(); ++i) {
    if (pools[i].Hosts(layer, expert, is_shared)) out.push_back(static_cast<int>(i));
  }
  return out;
}

absl::StatusOr<int> ClusterSpec::FindPool(const std::string& name) const {
  std::vector<std::string> names;
  for (size_t i = 0; i < pools.size(); ++i) {
    if (pools[i].name == name) return static_cast<int>(i);
    names.push_back(pools[i].name);
  }
  return absl::NotFoundError(absl::StrCat(
      "pool \"", name, "\": not in the cluster file (pools: ", absl::StrJoin(names, ", "), ")"));
}

absl::StatusOr<ClusterSpec> ParseCluster(const std::string& json_text, const ModelConfig& config) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("cluster: not a JSON object");
  }
  ClusterSpec spec;
  absl::StatusOr<std::string> router = Address(j.value("router", nlohmann::json()), "router");
  if (!router.ok()) return router.status();
  spec.router_address = *router;
  if (j.contains("orchestrator")) {
    absl::StatusOr<std::string> orch = Address(j["orchestrator"], "orchestrator");
    if (!orch.ok()) return orch.status();
    spec.orchestrator_address = *orch;
  }
  if (j.contains("pools") && !j["pools"].is_array()) {
    return absl::InvalidArgumentError("pools: expected a list");
  }
  // No pools at all is a placement that pools fill by joining; a partial one is a typo.
  if (!j.contains("pools") || j["pools"].empty()) return spec;
  std::map<std::string, std::string> address_owner = {{spec.router_address, "router"}};
  if (!spec.orchestrator_address.empty()) address_owner[spec.orchestrator_address] = "orchestrator";
  for (size_t p = 0; p < j["pools"].size(); ++p) {
    const nlohmann::json& pj = j["pools"][p];
    const std::string field = absl::StrCat("pools[", p, "]");
    PoolSpec pool;
    if (!pj.is_object() || !pj.contains("name") || !pj["name"].is_string() ||
        pj["name"].get<std::string>().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".name: required"));
    }
    pool.name = pj["name"].get<std::string>();
    for (const PoolSpec& other : spec.pools) {
      if (other.name == pool.name) {
        return absl::InvalidArgumentError(
            absl::StrCat("pool \"", pool.name, "\": name used twice"));
      }
    }
    absl::StatusOr<std::string> addr = Address(pj, absl::StrCat("pool \"", pool.name, "\""));
    if (!addr.ok()) return addr.status();
    pool.address = *addr;
    auto [it, fresh] =
        address_owner.emplace(pool.address, absl::StrCat("pool \"", pool.name, "\""));
    if (!fresh) {
      return absl::InvalidArgumentError(absl::StrCat(
          "pool \"", pool.name, "\": address ", pool.address, " already used by ", it->second));
    }
    if (!pj.contains("hosts") || !pj["hosts"].is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat("pool \"", pool.name, "\".hosts: required list"));
    }
    for (size_t h = 0; h < pj["hosts"].size(); ++h) {
      const nlohmann::json& hj = pj["hosts"][h];
      const std::string hf = absl::StrCat("pool \"", pool.name, "\".hosts[", h, "]");
      if (!hj.is_object()) return absl::InvalidArgumentError(absl::StrCat(hf, ": expected object"));
      absl::StatusOr<std::vector<int>> layers =
          ParseIds(hj.value("layers", nlohmann::json("all")), config.n_layers, hf + ".layers");
      if (!layers.ok()) return layers.status();
      absl::StatusOr<std::vector<int>> experts =
          ParseIds(hj.value("experts", nlohmann::json()), config.n_experts, hf + ".experts");
      if (!experts.ok()) return experts.status();
      absl::StatusOr<std::vector<int>> shared =
          ParseIds(hj.value("shared", nlohmann::json()), config.n_shared, hf + ".shared");
      if (!shared.ok()) return shared.status();
      for (int l : *layers) {
        for (int e : *experts) pool.routed.insert({l, e});
        for (int s : *shared) pool.shared.insert({l, s});
      }
    }
    spec.pools.push_back(std::move(pool));
  }
  for (int l = 0; l < config.n_layers; ++l) {
    for (int e = 0; e < config.n_experts; ++e) {
      if (spec.Hosts(l, e, false).empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("layer ", l, " expert ", e, ": hosted by no pool"));
      }
    }
    for (int s = 0; s < config.n_shared; ++s) {
      if (spec.Hosts(l, s, true).empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("layer ", l, " shared expert ", s, ": hosted by no pool"));
      }
    }
  }
  return spec;
}

absl::StatusOr<ClusterSpec> LoadCluster(const std::string& path, const ModelConfig& config) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream buf;
  buf << in.rdbuf();
  absl::StatusOr<ClusterSpec> spec = ParseCluster(buf.str(), config);
  if (!spec.ok()) {
    return absl::Status(spec.status().code(), absl::StrCat(path, ": ", spec.status().message()));
  }
  return spec;
}

}  // namespace moe
