// moe-train: trains a model, evaluates a checkpoint, or profiles its experts.
//   moe-train train --config=C.json --train=T.ids --val=V.ids --out=DIR [...]
//   moe-train eval --model=DIR --data=X.ids [--seq_len=N] [--max_tokens=N]
//   moe-train init --config=C.json --seed=N --out=DIR     a random-init checkpoint
//   moe-train logits --model=DIR --ids=1,2,3 --out=F.pt  full-forward logits, for references
//   moe-train analyze --model=DIR --data=test.ids --tags=test.tags --genres=test.genres
//                     --labels=labels.json [--out=DIR/expert_profiles.json]
#include <torch/torch.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "models/checkpoint.h"
#include "models/config.h"
#include "models/embedded.h"
#include "models/train/analysis.h"
#include "models/train/trainer.h"
#include "models/transformer.h"
#include "models/usage.h"

ABSL_FLAG(std::string, config, "", "train: model config JSON");
ABSL_FLAG(std::string, train, "data/brown/train.ids", "train: training token ids");
ABSL_FLAG(std::string, val, "data/brown/val.ids", "train: validation token ids");
ABSL_FLAG(std::string, out, "", "train: output directory; analyze: output JSON file");
ABSL_FLAG(std::string, tokenizer, "", "train: tokenizer.model copied into the checkpoint");
ABSL_FLAG(int, batch, 16, "train: sequences per step");
ABSL_FLAG(int, seq_len, 256, "train/eval: tokens per sequence");
ABSL_FLAG(int64_t, steps, 2000, "train: optimizer steps");
ABSL_FLAG(int, warmup, 100, "train: warmup steps");
ABSL_FLAG(double, lr, 3e-3, "train: peak learning rate");
ABSL_FLAG(double, min_lr, 3e-4, "train: final learning rate (cosine decay)");
ABSL_FLAG(double, weight_decay, 0.1, "train: AdamW weight decay (matrices only)");
ABSL_FLAG(double, dropout, 0.0, "train: dropout on embeddings and residual branches");
ABSL_FLAG(double, expert_dropout, 0.0, "train: dropout on the experts' hidden activations");
ABSL_FLAG(double, aux_loss, 0.01, "train: load-balancing loss coefficient");
ABSL_FLAG(double, z_loss, 0.001, "train: router z-loss coefficient (0 = off)");
ABSL_FLAG(int, eval_every, 200, "train: steps between validations");
ABSL_FLAG(int, keep_every, 0, "train: keep the weights every N steps in OUT/steps/ (0 = no)");
ABSL_FLAG(int, eval_batches, 40, "train: validation windows (0 = whole split)");
ABSL_FLAG(uint64_t, seed, 1, "train: seed of init and data order");
ABSL_FLAG(bool, resume, false, "train: continue from OUT/last");
ABSL_FLAG(int64_t, time_budget_s, 0, "train: stop after this many seconds (0 = no limit)");
ABSL_FLAG(
    int64_t, stop_after, 0,
    "train: stop after this step, resumable with --resume as if never stopped (0 = at --steps)");
ABSL_FLAG(int, threads, 0, "intra-op threads (0 = LibTorch's default)");
ABSL_FLAG(std::string, model, "models/brown-moe", "eval/analyze: checkpoint directory");
ABSL_FLAG(std::string, data, "data/brown/test.ids", "eval/analyze: token ids");
ABSL_FLAG(int64_t, max_tokens, 0, "eval: evaluate at most this many tokens (0 = all)");
ABSL_FLAG(std::string, tags, "data/brown/test.tags", "analyze: POS tag per token");
ABSL_FLAG(std::string, genres, "data/brown/test.genres", "analyze: genre per token");
ABSL_FLAG(std::vector<std::string>, models, {},
          "average: comma-separated checkpoint directories of one model");
ABSL_FLAG(std::string, ids, "", "logits: comma-separated token ids");
ABSL_FLAG(std::string, labels, "data/brown/labels.json", "analyze: tag and genre names");

namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "moe-train: %s\n", std::string(s.message()).c_str());
  return 1;
}

int RunTrain() {
  if (absl::GetFlag(FLAGS_config).empty() || absl::GetFlag(FLAGS_out).empty()) {
    std::fprintf(stderr, "moe-train train: --config and --out are required\n");
    return 2;
  }
  absl::StatusOr<moe::ModelConfig> config = moe::LoadConfigFile(absl::GetFlag(FLAGS_config));
  if (!config.ok()) return Fail(config.status());
  moe::TrainOptions o;
  o.train_ids = absl::GetFlag(FLAGS_train);
  o.val_ids = absl::GetFlag(FLAGS_val);
  o.out_dir = absl::GetFlag(FLAGS_out);
  o.tokenizer = absl::GetFlag(FLAGS_tokenizer);
  o.batch_size = absl::GetFlag(FLAGS_batch);
  o.seq_len = absl::GetFlag(FLAGS_seq_len);
  o.steps = absl::GetFlag(FLAGS_steps);
  o.warmup_steps = absl::GetFlag(FLAGS_warmup);
  o.lr = absl::GetFlag(FLAGS_lr);
  o.min_lr = absl::GetFlag(FLAGS_min_lr);
  o.weight_decay = absl::GetFlag(FLAGS_weight_decay);
  o.dropout = absl::GetFlag(FLAGS_dropout);
  if (o.dropout < 0 || o.dropout >= 1) {
    std::fprintf(stderr, "moe-train train: --dropout must be in [0, 1)\n");
    return 2;
  }
  o.expert_dropout = absl::GetFlag(FLAGS_expert_dropout);
  if (o.expert_dropout < 0 || o.expert_dropout >= 1) {
    std::fprintf(stderr, "moe-train train: --expert_dropout must be in [0, 1)\n");
    return 2;
  }
  o.aux_loss_coef = absl::GetFlag(FLAGS_aux_loss);
  o.z_loss_coef = absl::GetFlag(FLAGS_z_loss);
  o.eval_every = absl::GetFlag(FLAGS_eval_every);
  o.eval_batches = absl::GetFlag(FLAGS_eval_batches);
  o.keep_every = absl::GetFlag(FLAGS_keep_every);
  if (o.eval_every < 1 || o.keep_every < 0) {
    std::fprintf(stderr, "moe-train train: --eval_every must be >= 1 and --keep_every >= 0\n");
    return 2;
  }
  o.seed = absl::GetFlag(FLAGS_seed);
  o.resume = absl::GetFlag(FLAGS_resume);
  o.time_budget_s = absl::GetFlag(FLAGS_time_budget_s);
  o.stop_after = absl::GetFlag(FLAGS_stop_after);
  std::printf("model: %lld parameters, %lld active per token\n",
              static_cast<long long>(config->ParameterCount()),
              static_cast<long long>(config->ActiveParameterCount()));
  absl::StatusOr<moe::TrainReport> r = moe::Train(*config, o);
  if (!r.ok()) return Fail(r.status());
  std::printf("done: %lld steps in %.0f s on %s (%.0f tokens/s), best val loss %.4f (ppl %.2f)\n",
              static_cast<long long>(r->steps), r->seconds, r->device.c_str(), r->tokens_per_second,
              r->best_val_loss, std::exp(r->best_val_loss));
  return 0;
}

int RunEval() {
  absl::StatusOr<std::vector<uint16_t>> ids = moe::ReadTokenFile(absl::GetFlag(FLAGS_data));
  if (!ids.ok()) return Fail(ids.status());
  absl::StatusOr<moe::EvalReport> r =
      moe::Evaluate(absl::GetFlag(FLAGS_model), *ids, absl::GetFlag(FLAGS_seq_len),
                    absl::GetFlag(FLAGS_max_tokens));
  if (!r.ok()) return Fail(r.status());
  std::printf("{\"cross_entropy\": %.6f, \"perplexity\": %.4f, \"tokens\": %lld}\n",
              r->cross_entropy, r->perplexity, static_cast<long long>(r->tokens));
  return 0;
}

int RunAnalyze() {
  moe::AnalysisInputs in;
  in.model_dir = absl::GetFlag(FLAGS_model);
  in.ids = absl::GetFlag(FLAGS_data);
  in.tags = absl::GetFlag(FLAGS_tags);
  in.genres = absl::GetFlag(FLAGS_genres);
  in.labels = absl::GetFlag(FLAGS_labels);
  in.seq_len = absl::GetFlag(FLAGS_seq_len);
  std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) out = in.model_dir + "/expert_profiles.json";
  absl::StatusOr<std::string> summary = moe::AnalyzeExperts(in, out);
  if (!summary.ok()) return Fail(summary.status());
  std::printf("%s", summary->c_str());
  return 0;
}

int RunInit() {
  absl::StatusOr<moe::ModelConfig> config = moe::LoadConfigFile(absl::GetFlag(FLAGS_config));
  if (!config.ok()) return Fail(config.status());
  absl::StatusOr<moe::Checkpoint> ckpt = moe::RandomCheckpoint(*config, absl::GetFlag(FLAGS_seed));
  if (!ckpt.ok()) return Fail(ckpt.status());
  absl::Status s = moe::SaveCheckpoint(absl::GetFlag(FLAGS_out), *config, ckpt->state, false);
  return s.ok() ? 0 : Fail(s);
}

int RunAverage() {
  if (absl::GetFlag(FLAGS_out).empty()) {
    std::fprintf(stderr, "moe-train average: --models and --out are required\n");
    return 2;
  }
  absl::Status s = moe::AverageCheckpoints(absl::GetFlag(FLAGS_models), absl::GetFlag(FLAGS_out),
                                           /*half=*/true);
  return s.ok() ? 0 : Fail(s);
}

int RunLogits() {
  absl::StatusOr<moe::Checkpoint> ckpt = moe::LoadCheckpoint(absl::GetFlag(FLAGS_model));
  if (!ckpt.ok()) return Fail(ckpt.status());
  std::vector<int64_t> ids;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_ids), ',', absl::SkipEmpty())) {
    int64_t id;
    if (!absl::SimpleAtoi(part, &id) || id < 0 || id >= ckpt->config.vocab_size) {
      return Fail(absl::InvalidArgumentError(absl::StrCat("--ids: bad token id ", part)));
    }
    ids.push_back(id);
  }
  if (ids.empty() || static_cast<int>(ids.size()) > ckpt->config.context_length) {
    return Fail(absl::InvalidArgumentError("--ids: give 1..context_length token ids"));
  }
  moe::MoeTransformer model(ckpt->config);
  if (absl::Status s = moe::LoadStateDict(*model, ckpt->state); !s.ok()) return Fail(s);
  torch::NoGradGuard no_grad;
  torch::Tensor tokens = torch::tensor(ids).unsqueeze(0);
  torch::Tensor logits = model->forward(tokens, moe::DefaultPolicy(ckpt->config))[0];
  absl::Status s = moe::WriteStateFile(absl::GetFlag(FLAGS_out),
                                       {{"tokens", tokens[0]}, {"logits", logits.contiguous()}});
  return s.ok() ? 0 : Fail(s);
}

}  // namespace

int main(int argc, char** argv) {
  moe::InitUsage(
      "moe-train train|eval|analyze|init|logits|average [flags]: train a MoE model, evaluate it, "
      "profile its experts. See --help.");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  moe::SetIntraOpThreads(absl::GetFlag(FLAGS_threads));
  const std::string cmd = args.size() > 1 ? args[1] : "";
  if (cmd == "train") return RunTrain();
  if (cmd == "eval") return RunEval();
  if (cmd == "analyze") return RunAnalyze();
  if (cmd == "init") return RunInit();
  if (cmd == "logits") return RunLogits();
  if (cmd == "average") return RunAverage();
  std::fprintf(stderr,
               "usage: moe-train train|eval|analyze|init|logits|average [flags] (see --help)\n");
  return 2;
}
