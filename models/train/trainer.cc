#include "models/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "models/checkpoint.h"
#include "models/transformer.h"

namespace moe {
namespace fs = std::filesystem;

absl::StatusOr<std::vector<uint16_t>> ReadTokenFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  const std::streamsize bytes = in.tellg();
  if (bytes % 2 != 0) return absl::DataLossError(absl::StrCat(path, ": odd size"));
  std::vector<uint16_t> ids(bytes / 2);
  in.seekg(0);
  in.read(reinterpret_cast<char*>(ids.data()), bytes);
  if (!in) return absl::DataLossError(absl::StrCat(path, ": short read"));
  return ids;
}

namespace {

// What last/ holds besides the checkpoint itself: the rest of the state a resumed run needs.
constexpr char kOptimizerFile[] = "optimizer.pt";
constexpr char kProgressFile[] = "progress.txt";  // the step and the best validation loss
constexpr char kRngFile[] = "rng.txt";            // the data order's stream, the smoothed losses
constexpr char kTorchRngFile[] = "torch_rng.pt";  // LibTorch's CPU generator (dropout masks)

torch::Device PickDevice() {
  return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
}

// Random windows of seq_len + 1 tokens: inputs and next-token targets.
std::pair<torch::Tensor, torch::Tensor> SampleBatch(const std::vector<uint16_t>& ids, int batch,
                                                    int seq_len, std::mt19937_64& rng) {
  torch::Tensor x = torch::empty({batch, seq_len}, torch::kInt64);
  torch::Tensor y = torch::empty({batch, seq_len}, torch::kInt64);
  std::uniform_int_distribution<size_t> start(0, ids.size() - seq_len - 2);
  int64_t* xp = x.data_ptr<int64_t>();
  int64_t* yp = y.data_ptr<int64_t>();
  for (int b = 0; b < batch; ++b) {
    const size_t s = start(rng);
    for (int t = 0; t < seq_len; ++t) {
      xp[b * seq_len + t] = ids[s + t];
      yp[b * seq_len + t] = ids[s + t + 1];
    }
  }
  return {x, y};
}

double LearningRate(const TrainOptions& o, int64_t step) {
  if (step < o.warmup_steps) return o.lr * (step + 1) / o.warmup_steps;
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) /
                                            std::max<int64_t>(1, o.steps - o.warmup_steps));
  return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1 + std::cos(M_PI * progress));
}

// Mean cross-entropy over windows of the stream (see Evaluate).
double CrossEntropy(MoeTransformerImpl& model, const std::vector<uint16_t>& ids, int seq_len,
                    int64_t max_windows, torch::Device device, int64_t* tokens) {
  torch::NoGradGuard no_grad;
  model.eval();
  const RoutingPolicy policy = DefaultPolicy(model.config);
  double total = 0;
  int64_t count = 0, windows = 0;
  for (size_t s = 0; s + 1 < ids.size(); s += seq_len) {
    if (max_windows > 0 && windows >= max_windows) break;
    const int64_t len = std::min<int64_t>(seq_len, static_cast<int64_t>(ids.size() - 1 - s));
    std::vector<int64_t> x(ids.begin() + s, ids.begin() + s + len);
    std::vector<int64_t> y(ids.begin() + s + 1, ids.begin() + s + 1 + len);
    torch::Tensor logits =
        model.forward(torch::tensor(x).unsqueeze(0).to(device), policy)[0];  // [len, V]
    total += torch::nn::functional::cross_entropy(
                 logits, torch::tensor(y).to(device),
                 torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                 .item<double>();
    count += len;
    ++windows;
  }
  model.train();
  if (tokens != nullptr) *tokens = count;
  return total / std::max<int64_t>(1, count);
}

// The state of LibTorch's CPU generator (dropout masks), which a checkpoint keeps.
torch::Tensor CpuGeneratorState() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}
void SetCpuGeneratorState(const torch::Tensor& state) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// Where ReplaceDir moves the directory it replaces while it swaps.
fs::path AsideDir(const fs::path& dir) { return fs::path(dir.string() + ".old"); }

// Puts the directory `from` in the place of `to` by renames: `to` becomes `to`.old, `from` becomes
// `to`, then `to`.old goes. A process killed at any point leaves a whole directory in `to`, or, if
// killed between the two renames, in `to`.old (see RecoverLastDir).
absl::Status ReplaceDir(const fs::path& from, const fs::path& to) {
  const fs::path old = AsideDir(to);
  std::error_code ec;
  fs::remove_all(old, ec);
  if (fs::exists(to)) fs::rename(to, old, ec);
  if (!ec) fs::rename(from, to, ec);
  if (ec) return absl::InternalError(absl::StrCat(to.string(), ": ", ec.message()));
  fs::remove_all(old, ec);
  return absl::OkStatus();
}

// Undoes a ReplaceDir that was cut off between its renames.
absl::Status RecoverLastDir(const fs::path& last) {
  const fs::path old = AsideDir(last);
  if (fs::exists(last) || !fs::exists(old)) return absl::OkStatus();
  std::error_code ec;
  fs::rename(old, last, ec);
  if (ec) return absl::InternalError(absl::StrCat(old.string(), ": ", ec.message()));
  return absl::OkStatus();
}

// Drops the validation curve's rows after `step`: those of a run that was cut off after
// writing them but before its checkpoint was in place, which the resumed run writes again.
absl::Status TrimCurve(const fs::path& curve, int64_t step) {
  std::ifstream in(curve);
  if (!in) return absl::OkStatus();
  std::string header, line, kept;
  std::getline(in, header);
  while (std::getline(in, line)) {
    int64_t row_step;
    const bool whole = absl::SimpleAtoi(line.substr(0, line.find('\t')), &row_step) &&
                       std::count(line.begin(), line.end(), '\t') == 2;
    if (whole && row_step <= step) kept += line + "\n";
  }
  const fs::path tmp = fs::path(curve.string() + ".tmp");
  std::ofstream(tmp) << header << "\n" << kept;
  std::error_code ec;
  fs::rename(tmp, curve, ec);
  if (ec) return absl::InternalError(absl::StrCat(curve.string(), ": ", ec.message()));
  return absl::OkStatus();
}

std::string FormatDuration(double s) {
  const int64_t t = static_cast<int64_t>(s);
  return absl::StrFormat("%d:%02d:%02d", t / 3600, (t / 60) % 60, t % 60);
}

}  // namespace

absl::StatusOr<EvalReport> Evaluate(const std::string& model_dir, const std::vector<uint16_t>& ids,
                                    int seq_len, int64_t max_tokens) {
  absl::StatusOr<Checkpoint> ckpt = LoadCheckpoint(model_dir);
  if (!ckpt.ok()) return ckpt.status();
  if (seq_len < 1 || seq_len > ckpt->config.context_length) {
    return absl::InvalidArgumentError(
        absl::StrCat("seq_len: must be in [1, ", ckpt->config.context_length, "]"));
  }
  MoeTransformer model(ckpt->config);
  if (absl::Status s = LoadStateDict(*model, ckpt->state); !s.ok()) return s;
  std::vector<uint16_t> slice = ids;
  if (max_tokens > 0 && static_cast<int64_t>(slice.size()) > max_tokens + 1) {
    slice.resize(max_tokens + 1);
  }
  EvalReport r;
  r.cross_entropy = CrossEntropy(*model, slice, seq_len, 0, torch::kCPU, &r.tokens);
  r.perplexity = std::exp(r.cross_entropy);
  return r;
}

absl::Status AverageCheckpoints(const std::vector<std::string>& model_dirs,
                                const std::string& out_dir, bool half) {
  if (model_dirs.empty()) return absl::InvalidArgumentError("models: give at least one checkpoint");
  absl::StatusOr<Checkpoint> first = LoadCheckpoint(model_dirs[0]);
  if (!first.ok()) return first.status();
  std::map<std::string, torch::Tensor> sum;
  for (const auto& [name, t] : first->state) sum[name] = t.to(torch::kFloat64);
  const std::string shape = ConfigToJson(first->config);
  for (size_t i = 1; i < model_dirs.size(); ++i) {
    absl::StatusOr<Checkpoint> next = LoadCheckpoint(model_dirs[i]);
    if (!next.ok()) return next.status();
    if (ConfigToJson(next->config) != shape) {
      return absl::InvalidArgumentError(
          absl::StrCat("models: ", model_dirs[i], " is not the same model as ", model_dirs[0]));
    }
    for (const auto& [name, t] : next->state) sum[name] += t.to(torch::kFloat64);
  }
  std::map<std::string, torch::Tensor> mean;
  for (const auto& [name, t] : sum) {
    mean[name] = (t / static_cast<double>(model_dirs.size())).to(torch::kFloat32);
  }
  if (absl::Status s = SaveCheckpoint(out_dir, first->config, mean, half); !s.ok()) return s;
  const fs::path tokenizer = fs::path(model_dirs[0]) / kTokenizerFile;
  if (fs::exists(tokenizer)) {
    std::error_code ec;
    fs::copy_file(tokenizer, fs::path(out_dir) / kTokenizerFile,
                  fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError(absl::StrCat(out_dir, ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainReport> Train(const ModelConfig& config, const TrainOptions& o) {
  if (absl::Status s = ValidateConfig(config); !s.ok()) return s;
  if (o.seq_len > config.context_length) {
    return absl::InvalidArgumentError("seq_len: longer than the model's context_length");
  }
  absl::StatusOr<std::vector<uint16_t>> train = ReadTokenFile(o.train_ids);
  if (!train.ok()) return train.status();
  absl::StatusOr<std::vector<uint16_t>> val = ReadTokenFile(o.val_ids);
  if (!val.ok()) return val.status();
  if (train->size() < static_cast<size_t>(o.seq_len + 2)) {
    return absl::InvalidArgumentError("train_ids: fewer tokens than one window");
  }
  for (uint16_t id : *train) {
    if (id >= config.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("train_ids: token id ", id, " >= vocab_size ", config.vocab_size));
    }
  }
  const torch::Device device = PickDevice();
  torch::manual_seed(o.seed);
  MoeTransformer model(config);
  model->RandomInit(o.seed);
  model->dropout = o.dropout;
  model->expert_dropout = o.expert_dropout;
  const fs::path last_dir = fs::path(o.out_dir) / "last";
  const fs::path best_dir = fs::path(o.out_dir) / "best";
  // The resume state is written whole into last.tmp, then swapped in for last (ReplaceDir).
  const fs::path next_dir = fs::path(o.out_dir) / "last.tmp";
  const fs::path curve = fs::path(o.out_dir) / "curve.tsv";
  if (o.resume) {
    if (absl::Status s = RecoverLastDir(last_dir); !s.ok()) return s;
  }
  int64_t start_step = 0;
  double best_val = std::numeric_limits<double>::infinity();
  if (o.resume && fs::exists(last_dir / kStateFile)) {
    absl::StatusOr<Checkpoint> last = LoadCheckpoint(last_dir.string());
    if (!last.ok()) return last.status();
    if (absl::Status s = LoadStateDict(*model, last->state); !s.ok()) return s;
    std::ifstream progress(last_dir / kProgressFile);
    progress >> start_step >> best_val;
  }
  if (o.stop_after < 0 || (o.stop_after > 0 && o.stop_after <= start_step)) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop_after: must be after the step to resume from (", start_step, ")"));
  }
  if (start_step > 0) {
    std::printf("resumed from step %lld (best validation loss so far %.4f)\n",
                static_cast<long long>(start_step), best_val);
    if (absl::Status s = TrimCurve(curve, start_step); !s.ok()) return s;
  } else {
    std::error_code ec;
    fs::remove(curve, ec);  // a fresh run's curve starts empty
  }
  model->to(device);
  model->train();

  // No weight decay on norms, biases and embeddings.
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : model->named_parameters()) {
    const bool is_matrix = p.value().dim() == 2 && p.key().find("emb") == std::string::npos;
    (is_matrix ? decay : no_decay).push_back(p.value());
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(
      decay, std::make_unique<torch::optim::AdamWOptions>(
                 torch::optim::AdamWOptions(o.lr).betas({0.9, 0.95}).weight_decay(o.weight_decay)));
  groups.emplace_back(no_decay,
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(o.lr).betas({0.9, 0.95}).weight_decay(0.0)));
  torch::optim::AdamW optimizer(groups, torch::optim::AdamWOptions(o.lr));
  const fs::path optimizer_file = last_dir / kOptimizerFile;
  if (o.resume && fs::exists(optimizer_file)) torch::load(optimizer, optimizer_file.string());

  auto save = [&](const fs::path& dir, bool half) -> absl::Status {
    std::map<std::string, torch::Tensor> state;
    for (auto& [name, t] : StateDict(*model)) state[name] = t.to(torch::kCPU);
    if (absl::Status s = SaveCheckpoint(dir.string(), config, state, half); !s.ok()) return s;
    if (!o.tokenizer.empty()) {
      fs::copy_file(o.tokenizer, dir / kTokenizerFile, fs::copy_options::overwrite_existing);
    }
    return absl::OkStatus();
  };

  // The data order's and the dropout masks' random streams. A resumed run continues both where
  // the checkpoint left them, so stopping and resuming does not change the run.
  std::mt19937_64 rng(o.seed);
  double ema_loss = 0, ema_aux = 0;  // smoothed training losses, for the log and the curve
  bool have_ema = false;
  const fs::path rng_file = last_dir / kRngFile;
  const fs::path torch_rng_file = last_dir / kTorchRngFile;
  if (o.resume && start_step > 0) {
    std::ifstream in(rng_file);
    have_ema = static_cast<bool>(in >> rng >> ema_loss >> ema_aux);
    if (!have_ema) {
      // A checkpoint from before the streams were kept: a fresh data order for the rest.
      rng.seed(o.seed + static_cast<uint64_t>(start_step) * 7919);
      ema_loss = ema_aux = 0;
    }
    if (fs::exists(torch_rng_file)) {
      torch::Tensor state;
      torch::load(state, torch_rng_file.string());
      SetCpuGeneratorState(state);
    }
  }
  const RoutingPolicy policy = DefaultPolicy(config);
  const bool tty = isatty(fileno(stdout));
  const absl::Time t0 = absl::Now();
  TrainReport report;
  report.resumed_from = start_step;
  report.device = device.str();
  int64_t step = start_step;
  auto evaluate_and_keep_best = [&]() -> absl::Status {
    const double v = CrossEntropy(*model, *val, o.seq_len, o.eval_batches, device, nullptr);
    const bool better = v < best_val;
    if (better) best_val = v;
    std::printf("%s step %lld  val loss %.4f  ppl %.2f%s\n", tty ? "\n" : "",
                static_cast<long long>(step), v, std::exp(v), better ? "  (best, saved)" : "");
    std::fflush(stdout);
    if (better) {
      if (absl::Status s = save(best_dir, o.half_best); !s.ok()) return s;
    }
    if (o.keep_every > 0 && step % o.keep_every == 0) {
      const fs::path kept = fs::path(o.out_dir) / "steps" / absl::StrFormat("%06d", step);
      if (absl::Status s = save(kept, false); !s.ok()) return s;
    }
    std::error_code ec;
    fs::remove_all(next_dir, ec);
    if (absl::Status s = save(next_dir, false); !s.ok()) return s;
    torch::save(optimizer, (next_dir / kOptimizerFile).string());
    std::ofstream(next_dir / kProgressFile) << step << " " << best_val << "\n";
    {
      std::ofstream out(next_dir / kRngFile);
      out.precision(17);
      out << rng << "\n" << ema_loss << " " << ema_aux << "\n";
    }
    torch::save(CpuGeneratorState(), (next_dir / kTorchRngFile).string());
    // The validation curve: step, smoothed training loss, validation loss (nats per token).
    const bool fresh = !fs::exists(curve);
    {
      std::ofstream out(curve, std::ios::app);
      if (fresh) out << "step\ttrain_loss\tval_loss\n";
      out << step << "\t" << ema_loss << "\t" << v << "\n";
    }
    return ReplaceDir(next_dir, last_dir);
  };
  for (; step < o.steps; ++step) {
    const double lr = LearningRate(o, step);
    for (auto& g : optimizer.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    }
    auto [x, y] = SampleBatch(*train, o.batch_size, o.seq_len, rng);
    ForwardStats stats;
    torch::Tensor logits = model->forward(x.to(device), policy, &stats);
    torch::Tensor ce = torch::nn::functional::cross_entropy(logits.view({-1, config.vocab_size}),
                                                            y.to(device).view({-1}));
    torch::Tensor loss = ce + o.aux_loss_coef * stats.aux_loss + o.z_loss_coef * stats.z_loss;
    optimizer.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(model->parameters(), o.grad_clip);
    optimizer.step();

    const double ce_v = ce.item<double>(), aux_v = stats.aux_loss.item<double>();
    const int64_t done = step - start_step + 1;
    ema_loss = have_ema ? 0.95 * ema_loss + 0.05 * ce_v : ce_v;
    ema_aux = have_ema ? 0.95 * ema_aux + 0.05 * aux_v : aux_v;
    have_ema = true;
    const double elapsed = absl::ToDoubleSeconds(absl::Now() - t0);
    const double tps = done * static_cast<double>(o.batch_size) * o.seq_len / elapsed;
    const double eta = elapsed / done * (o.steps - step - 1);
    if (tty || done % 20 == 0 || step + 1 == o.steps) {
      const int width = 24;
      const int filled = static_cast<int>(width * (step + 1) / o.steps);
      std::printf("%s[%s%s] %lld/%lld  loss %.4f  aux %.4f  lr %.2e  %.0f tok/s  ETA %s%s",
                  tty ? "\r" : "", std::string(filled, '#').c_str(),
                  std::string(width - filled, '.').c_str(), static_cast<long long>(step + 1),
                  static_cast<long long>(o.steps), ema_loss, ema_aux, lr, tps,
                  FormatDuration(eta).c_str(), tty ? "" : "\n");
      std::fflush(stdout);
    }
    report.final_train_loss = ema_loss;
    const bool out_of_time = o.time_budget_s > 0 && elapsed > o.time_budget_s;
    const bool stop_here = step + 1 == o.stop_after;
    const bool keep_here = o.keep_every > 0 && (step + 1) % o.keep_every == 0;
    if ((step + 1) % o.eval_every == 0 || step + 1 == o.steps || out_of_time || stop_here ||
        keep_here) {
      ++step;
      if (absl::Status s = evaluate_and_keep_best(); !s.ok()) return s;
      --step;
    }
    if (out_of_time || stop_here) {
      if (out_of_time) {
        std::printf("time budget of %llds reached at step %lld\n",
                    static_cast<long long>(o.time_budget_s), static_cast<long long>(step + 1));
      }
      ++step;
      break;
    }
  }
  report.steps = step;
  report.best_val_loss = best_val;
  report.seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  report.tokens_per_second =
      (step - start_step) * static_cast<double>(o.batch_size) * o.seq_len / report.seconds;
  return report;
}

}  // namespace moe
