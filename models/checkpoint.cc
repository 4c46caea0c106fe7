#include "models/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/transformer.h"

namespace moe {
namespace fs = std::filesystem;

absl::StatusOr<std::map<std::string, torch::Tensor>> ReadStateFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::map<std::string, torch::Tensor> out;
  try {
    torch::IValue value = torch::pickle_load(bytes);
    if (!value.isGenericDict()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": not a dict of tensors (save a plain dict, not an OrderedDict)"));
    }
    for (const auto& item : value.toGenericDict()) {
      if (!item.key().isString() || !item.value().isTensor()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": entries must be name -> tensor"));
      }
      out[item.key().toStringRef()] = item.value().toTensor();
    }
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    return absl::DataLossError(
        absl::StrCat(path, ": unreadable state dict (truncated or corrupt?): ", what));
  }
  return out;
}

absl::Status WriteStateFile(const std::string& path,
                            const std::map<std::string, torch::Tensor>& state) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, tensor] : state) dict.insert(name, tensor.contiguous().cpu());
  std::vector<char> bytes = torch::pickle_save(dict);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) return absl::InternalError(absl::StrCat(tmp, ": write failed"));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat(path, ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& dir) {
  Checkpoint ckpt;
  ckpt.dir = dir;
  absl::StatusOr<ModelConfig> config = LoadConfigFile((fs::path(dir) / kConfigFile).string());
  if (!config.ok()) return config.status();
  ckpt.config = *config;
  const std::string state_path = (fs::path(dir) / kStateFile).string();
  absl::StatusOr<std::map<std::string, torch::Tensor>> state = ReadStateFile(state_path);
  if (!state.ok()) return state.status();

  std::vector<std::string> missing, wrong, unexpected;
  std::set<std::string> expected_names;
  for (const auto& [name, shape] : ExpectedTensors(ckpt.config)) {
    expected_names.insert(name);
    auto it = state->find(name);
    if (it == state->end()) {
      missing.push_back(name);
      continue;
    }
    const torch::Tensor& t = it->second;
    if (t.sizes().vec() != shape) {
      wrong.push_back(absl::StrCat(name, " has shape [", absl::StrJoin(t.sizes(), ", "),
                                   "], config implies [", absl::StrJoin(shape, ", "), "]"));
    } else if (!t.is_floating_point()) {
      wrong.push_back(absl::StrCat(name, " is not a floating-point tensor"));
    } else if (!torch::isfinite(t).all().item<bool>()) {
      wrong.push_back(absl::StrCat(name, " has NaN or Inf values"));
    } else {
      ckpt.state[name] = t.to(torch::kFloat).contiguous();
    }
  }
  for (const auto& [name, t] : *state) {
    if (!expected_names.count(name)) unexpected.push_back(name);
  }
  if (!missing.empty() || !wrong.empty() || !unexpected.empty()) {
    std::vector<std::string> parts;
    if (!missing.empty()) parts.push_back(absl::StrCat("missing: ", absl::StrJoin(missing, ", ")));
    if (!wrong.empty()) parts.push_back(absl::StrCat("wrong: ", absl::StrJoin(wrong, "; ")));
    if (!unexpected.empty()) {
      parts.push_back(absl::StrCat("unexpected: ", absl::StrJoin(unexpected, ", ")));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(state_path, ": does not match config.json: ", absl::StrJoin(parts, " | ")));
  }
  std::ifstream profiles(fs::path(dir) / kProfilesFile);
  if (profiles) {
    std::stringstream buf;
    buf << profiles.rdbuf();
    ckpt.profiles_json = buf.str();
  }
  return ckpt;
}

absl::StatusOr<Checkpoint> RandomCheckpoint(const ModelConfig& config, uint64_t seed) {
  if (absl::Status s = ValidateConfig(config); !s.ok()) return s;
  MoeTransformer model(config);
  model->RandomInit(seed);
  Checkpoint ckpt;
  ckpt.config = config;
  ckpt.state = StateDict(*model);
  return ckpt;
}

absl::StatusOr<Checkpoint> LoadModel(const ModelSource& source) {
  if (!source.random_init_config.empty()) {
    absl::StatusOr<ModelConfig> config = LoadConfigFile(source.random_init_config);
    if (!config.ok()) return config.status();
    return RandomCheckpoint(*config, source.seed);
  }
  if (source.model_dir.empty()) {
    return absl::InvalidArgumentError("model: give a checkpoint directory or a random-init config");
  }
  return LoadCheckpoint(source.model_dir);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFor(const ModelSource& source,
                                                            const ModelConfig& config) {
  const bool random_init = !source.random_init_config.empty();
  std::string path = source.tokenizer;
  if (!random_init && path.empty()) path = (fs::path(source.model_dir) / kTokenizerFile).string();
  if (!path.empty()) {
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Load(path);
    if (tok.ok() && (*tok)->vocab_size() == config.vocab_size) return tok;
    // A random model may borrow any tokenizer of its vocabulary size; a checkpoint may not.
    if (!random_init) {
      if (!tok.ok()) return tok.status();
      return absl::InvalidArgumentError(absl::StrCat(path, ": tokenizer has ", (*tok)->vocab_size(),
                                                     " ids, the model's vocab_size is ",
                                                     config.vocab_size));
    }
  }
  if (config.vocab_size < 259) {
    return absl::InvalidArgumentError(
        "vocab_size: a model without a tokenizer needs >= 259 ids (256 bytes + 3 controls)");
  }
  return Tokenizer::Bytes(config.vocab_size);
}

absl::Status SaveCheckpoint(const std::string& dir, const ModelConfig& config,
                            const std::map<std::string, torch::Tensor>& state, bool half) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": ", ec.message()));
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, t] : state) {
    out[name] = half ? t.detach().to(torch::kHalf) : t.detach().to(torch::kFloat);
  }
  if (absl::Status s = WriteStateFile((fs::path(dir) / kStateFile).string(), out); !s.ok()) {
    return s;
  }
  std::ofstream cfg(fs::path(dir) / kConfigFile);
  cfg << ConfigToJson(config);
  if (!cfg) return absl::InternalError(absl::StrCat(dir, "/", kConfigFile, ": write failed"));
  return absl::OkStatus();
}

}  // namespace moe
