#include "models/config.h"

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace moe {
namespace {

absl::Status CheckRange(const char* field, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: must be in [%d, %d], got %d", field, lo, hi, value));
  }
  return absl::OkStatus();
}

}  // namespace

int64_t ModelConfig::ParameterCount() const {
  const int64_t c = d_model;
  int64_t per_layer = 2 * 2 * c                               // ln1, ln2
                      + 3 * c * c + 3 * c + c * c + c         // qkv, proj
                      + static_cast<int64_t>(n_routed()) * c  // gate
                      + static_cast<int64_t>(n_experts + n_shared) * 2 * c * d_ff;
  return static_cast<int64_t>(vocab_size) * c + static_cast<int64_t>(context_length) * c +
         n_layers * per_layer + 2 * c;
}

int64_t ModelConfig::ActiveParameterCount() const {
  const int64_t c = d_model;
  int64_t per_layer = 4 * c + 4 * c * c + 4 * c + static_cast<int64_t>(n_routed()) * c +
                      static_cast<int64_t>(top_k) * 2 * c * d_micro() +
                      static_cast<int64_t>(n_shared) * 2 * c * d_ff;
  // The tied embedding is used once as the LM head; one position row per token.
  return static_cast<int64_t>(vocab_size) * c + c + n_layers * per_layer + 2 * c;
}

RoutingPolicy DefaultPolicy(const ModelConfig& config) {
  RoutingPolicy p;
  p.top_k = config.top_k;
  p.noise_std = config.noise_std;
  p.capacity_factor = config.capacity_factor;
  return p;
}

absl::Status ValidateConfig(const ModelConfig& c) {
  absl::Status s;
  s.Update(CheckRange("vocab_size", c.vocab_size, 3, 1 << 20));
  s.Update(CheckRange("d_model", c.d_model, 1, 1 << 16));
  s.Update(CheckRange("n_heads", c.n_heads, 1, 1024));
  s.Update(CheckRange("n_layers", c.n_layers, 1, 256));
  s.Update(CheckRange("context_length", c.context_length, 1, 1 << 16));
  s.Update(CheckRange("n_experts", c.n_experts, 1, 4096));
  s.Update(CheckRange("n_shared", c.n_shared, 0, 64));
  s.Update(CheckRange("granularity", c.granularity, 1, 256));
  s.Update(CheckRange("d_ff", c.d_ff, 1, 1 << 20));
  s.Update(CheckRange("eos_id", c.eos_id, 0, c.vocab_size - 1));
  if (!s.ok()) return s;
  s.Update(CheckRange("top_k", c.top_k, 1, c.n_routed()));
  if (c.d_model % c.n_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("d_model: %d is not divisible by n_heads %d", c.d_model, c.n_heads));
  }
  if (c.d_ff % c.granularity != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("d_ff: %d is not divisible by granularity %d", c.d_ff, c.granularity));
  }
  if (!(c.noise_std >= 0)) return absl::InvalidArgumentError("noise_std: must be >= 0");
  if (!(c.capacity_factor >= 0)) {
    return absl::InvalidArgumentError("capacity_factor: must be >= 0");
  }
  return s;
}

absl::Status ValidatePolicy(const RoutingPolicy& p, const ModelConfig& c) {
  if (p.top_k < 1 || p.top_k > c.n_routed()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "top_k: must be in [1, %d] (n_experts * granularity), got %d", c.n_routed(), p.top_k));
  }
  if (!(p.noise_std >= 0 && p.noise_std <= 100)) {
    return absl::InvalidArgumentError(
        absl::StrCat("noise_std: must be in [0, 100], got ", p.noise_std));
  }
  if (!(p.capacity_factor >= 0 && p.capacity_factor <= 1000)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "capacity_factor: must be 0 (dropless) or in (0, 1000], got ", p.capacity_factor));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ParseConfigJson(const std::string& json_text) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("config: not a JSON object");
  }
  ModelConfig c;
  static const char* const kKnown[] = {"name",        "vocab_size",      "d_model",   "n_heads",
                                       "n_layers",    "context_length",  "n_experts", "n_shared",
                                       "granularity", "top_k",           "d_ff",      "eos_id",
                                       "noise_std",   "capacity_factor", "training"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const char* k : kKnown) known |= it.key() == k;
    if (!known) return absl::InvalidArgumentError(absl::StrCat("config: unknown field ", it.key()));
  }
  auto get_int = [&](const char* key, int* out) -> absl::Status {
    if (!j.contains(key)) return absl::OkStatus();
    if (!j[key].is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat("config: ", key, " must be an integer"));
    }
    *out = j[key].get<int>();
    return absl::OkStatus();
  };
  auto get_float = [&](const char* key, float* out) -> absl::Status {
    if (!j.contains(key)) return absl::OkStatus();
    if (!j[key].is_number()) {
      return absl::InvalidArgumentError(absl::StrCat("config: ", key, " must be a number"));
    }
    *out = j[key].get<float>();
    return absl::OkStatus();
  };
  absl::Status s;
  if (j.contains("name")) {
    if (!j["name"].is_string()) return absl::InvalidArgumentError("config: name must be a string");
    c.name = j["name"].get<std::string>();
  }
  s.Update(get_int("vocab_size", &c.vocab_size));
  s.Update(get_int("d_model", &c.d_model));
  s.Update(get_int("n_heads", &c.n_heads));
  s.Update(get_int("n_layers", &c.n_layers));
  s.Update(get_int("context_length", &c.context_length));
  s.Update(get_int("n_experts", &c.n_experts));
  s.Update(get_int("n_shared", &c.n_shared));
  s.Update(get_int("granularity", &c.granularity));
  s.Update(get_int("top_k", &c.top_k));
  s.Update(get_int("d_ff", &c.d_ff));
  s.Update(get_int("eos_id", &c.eos_id));
  s.Update(get_float("noise_std", &c.noise_std));
  s.Update(get_float("capacity_factor", &c.capacity_factor));
  if (!s.ok()) return s;
  if (absl::Status v = ValidateConfig(c); !v.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", v.message()));
  }
  return c;
}

absl::StatusOr<ModelConfig> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream buf;
  buf << in.rdbuf();
  absl::StatusOr<ModelConfig> c = ParseConfigJson(buf.str());
  if (!c.ok())
    return absl::Status(c.status().code(), absl::StrCat(path, ": ", c.status().message()));
  return c;
}

std::string ConfigToJson(const ModelConfig& c) {
  nlohmann::ordered_json j;
  j["name"] = c.name;
  j["vocab_size"] = c.vocab_size;
  j["d_model"] = c.d_model;
  j["n_heads"] = c.n_heads;
  j["n_layers"] = c.n_layers;
  j["context_length"] = c.context_length;
  j["n_experts"] = c.n_experts;
  j["n_shared"] = c.n_shared;
  j["granularity"] = c.granularity;
  j["top_k"] = c.top_k;
  j["d_ff"] = c.d_ff;
  j["eos_id"] = c.eos_id;
  j["noise_std"] = c.noise_std;
  j["capacity_factor"] = c.capacity_factor;
  return j.dump(2) + "\n";
}

std::string ModelId(const ModelConfig& c) {
  // FNV-1a over the architecture fields (not the name, not runtime policy defaults).
  uint64_t h = 1469598103934665603ull;
  for (int v : {c.vocab_size, c.d_model, c.n_heads, c.n_layers, c.context_length, c.n_experts,
                c.n_shared, c.granularity, c.d_ff, c.eos_id}) {
    for (int b = 0; b < 4; ++b) {
      h ^= static_cast<uint64_t>((v >> (8 * b)) & 0xff);
      h *= 1099511628211ull;
    }
  }
  return absl::StrFormat("%s-%08x", c.name, static_cast<uint32_t>(h ^ (h >> 32)));
}

}  // namespace moe
