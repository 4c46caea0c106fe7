// The checkpoint loader on outside bytes: config.json text, and model.pt (a pickled dict of
// tensors, a zip archive) as a state file and as a whole checkpoint directory. Each either loads
// or fails with a clear error; a loaded checkpoint has every tensor the config implies.
#include <filesystem>

#include "models/checkpoint.h"
#include "models/config.h"
#include "models/transformer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moe::fuzz::ByteReader in(data, size);
  const uint8_t mode = in.Byte() % 3;
  const std::string bytes = in.Rest();
  if (mode == 0) {
    absl::StatusOr<moe::ModelConfig> config = moe::ParseConfigJson(bytes);
    if (!config.ok()) {
      FUZZ_CHECK(moe::fuzz::IsClearError(config.status()), config.status().ToString());
    } else {
      FUZZ_CHECK(config->ParameterCount() > 0, "a valid config with no parameters");
    }
    return 0;
  }
  if (mode == 1) {
    auto state = moe::ReadStateFile(moe::fuzz::WriteTempFile("state", bytes));
    if (!state.ok()) {
      FUZZ_CHECK(moe::fuzz::IsClearError(state.status()), state.status().ToString());
    } else {
      for (const auto& [name, t] : *state) FUZZ_CHECK(t.defined(), name + " is undefined");
    }
    return 0;
  }
  // A checkpoint directory: the shipped model's config beside the fuzzed model.pt.
  static const std::string dir = [] {
    const std::string d = moe::fuzz::WriteTempFile("ckpt", "") + ".d";
    std::filesystem::create_directories(d);
    std::filesystem::copy_file(moe::fuzz::SourcePath("models/brown-moe/config.json"),
                               d + "/config.json",
                               std::filesystem::copy_options::overwrite_existing);
    return d;
  }();
  std::ofstream(dir + "/model.pt", std::ios::binary | std::ios::trunc) << bytes;
  absl::StatusOr<moe::Checkpoint> ckpt = moe::LoadCheckpoint(dir);
  if (!ckpt.ok()) {
    FUZZ_CHECK(moe::fuzz::IsClearError(ckpt.status()), ckpt.status().ToString());
    return 0;
  }
  for (const auto& [name, shape] : moe::ExpectedTensors(ckpt->config)) {
    auto it = ckpt->state.find(name);
    FUZZ_CHECK(it != ckpt->state.end(), "loaded without " + name);
    FUZZ_CHECK(it->second.sizes().vec() == shape, name + " has the wrong shape");
  }
  return 0;
}
