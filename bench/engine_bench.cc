// Embedded engine throughput on a random model: prefill tokens/s, single-stream decode ms/token,
// batched decode tokens/s. Prints one JSON object per measurement.
//   engine_bench --config=models/configs/brown-moe.json --threads=1
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "models/embedded.h"

ABSL_FLAG(std::string, config, "models/configs/brown-moe.json", "model config (random init)");
ABSL_FLAG(int, threads, 1, "intra-op threads");
ABSL_FLAG(int, prompt_tokens, 128, "prompt length for prefill");
ABSL_FLAG(int, decode_tokens, 128, "tokens generated per sequence");
ABSL_FLAG(std::string, batches, "1,8,32", "concurrent sequences to measure");
ABSL_FLAG(int, repeats, 3, "runs per measurement (the best is reported)");

namespace {

moe::GenerateParams Params(int prompt_len, int new_tokens, uint64_t seed) {
  moe::GenerateParams p;
  for (int i = 0; i < prompt_len; ++i)
    p.prompt.push_back(3 + (i * 37 + static_cast<int>(seed)) % 250);
  p.max_new_tokens = new_tokens;
  p.sampling.temperature = 0;  // greedy: no early stop by sampling end-of-text
  p.sampling.seed = seed;
  return p;
}

// Runs `batch` sequences together; returns seconds of the whole run and tokens generated.
std::pair<double, int64_t> Run(moe::EmbeddedModel& m, int batch, int prompt_len, int new_tokens) {
  int64_t tokens = 0;
  for (int b = 0; b < batch; ++b) {
    moe::GenerateCallbacks cb;
    cb.on_token = [&tokens](const moe::TokenOutput& t) { tokens += !t.is_prompt; };
    cb.on_done = [](const absl::Status& s) {
      if (!s.ok()) std::fprintf(stderr, "failed: %s\n", s.ToString().c_str());
    };
    (void)m.engine().Submit(Params(prompt_len, new_tokens, b + 1), cb);
  }
  const absl::Time start = absl::Now();
  m.engine().RunUntilIdle();
  return {absl::ToDoubleSeconds(absl::Now() - start), tokens};
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  moe::SetIntraOpThreads(absl::GetFlag(FLAGS_threads));
  moe::ModelSource source;
  source.random_init_config = absl::GetFlag(FLAGS_config);
  source.seed = 1;
  moe::EngineOptions options;
  options.max_batch = 64;
  auto model = moe::EmbeddedModel::Load(source, options);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  const int reps = absl::GetFlag(FLAGS_repeats);
  const int threads = absl::GetFlag(FLAGS_threads);
  Run(**model, 1, 16, 16);  // warm-up

  // Prefill: one prompt, one generated token; the prompt dominates.
  const int plen = absl::GetFlag(FLAGS_prompt_tokens);
  double best = 1e9;
  for (int r = 0; r < reps; ++r) best = std::min(best, Run(**model, 1, plen, 1).first);
  std::printf(
      "{\"measure\": \"prefill\", \"threads\": %d, \"prompt_tokens\": %d, "
      "\"tokens_per_s\": %.0f}\n",
      threads, plen, plen / best);

  const int ntok = absl::GetFlag(FLAGS_decode_tokens);
  std::string batches = absl::GetFlag(FLAGS_batches);
  for (size_t pos = 0; pos < batches.size();) {
    size_t comma = batches.find(',', pos);
    if (comma == std::string::npos) comma = batches.size();
    const int batch = std::stoi(batches.substr(pos, comma - pos));
    pos = comma + 1;
    // Decode only: subtract a run that generates one token per sequence (prefill + 1 step).
    double best_full = 1e9, best_base = 1e9;
    int64_t tokens = 0;
    for (int r = 0; r < reps; ++r) {
      auto [s, t] = Run(**model, batch, 16, ntok);
      best_full = std::min(best_full, s);
      tokens = t;
      best_base = std::min(best_base, Run(**model, batch, 16, 1).first);
    }
    const double decode_s = best_full - best_base;
    const double decode_tokens = static_cast<double>(tokens - batch);
    std::printf(
        "{\"measure\": \"decode\", \"threads\": %d, \"batch\": %d, \"ms_per_step\": %.3f, "
        "\"tokens_per_s\": %.0f}\n",
        threads, batch, 1000 * decode_s / (ntok - 1), decode_tokens / decode_s);
  }
  return 0;
}
