#include "models/engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "models/inference.h"
#include "models/kv_cache.h"
#include "models/moe_executor.h"
#include "models/splitmix.h"
#include "models/threads.h"

namespace moe {

struct Engine::Sequence {
  uint64_t id = 0;
  GenerateParams params;
  GenerateCallbacks callbacks;
  Sampler sampler;
  int length = 0;          // tokens in the cache
  int pending_token = -1;  // sampled, not yet run through the model (its position = length)
  int generated = 0;
  bool done = false;

  Sequence(GenerateParams p, GenerateCallbacks c)
      : params(std::move(p)), callbacks(std::move(c)), sampler(params.sampling, params.prompt) {}
};

namespace {

// Row `row` of a layer's executor output as the engine reports it.
LayerRoute RouteOfRow(const MoeLayerOutput& out, int layer, int64_t row, int n_routed,
                      bool want_probs) {
  LayerRoute r;
  r.layer = layer;
  r.latency_ms = static_cast<float>(out.latency_ms);
  const int k = out.top_k;
  for (int s = 0; s < k; ++s) {
    const int64_t i = row * k + s;
    if (out.expert_ids[i] < 0) continue;
    r.ids.push_back(out.expert_ids[i]);
    r.weights.push_back(out.weights[i]);
    r.pools.push_back(out.pool_index.empty() ? std::string() : out.pools[out.pool_index[i]]);
  }
  for (int32_t p : out.shared_pool_index) r.shared_pools.push_back(out.pools[p]);
  if (want_probs && !out.probs.empty()) {
    r.probs.assign(out.probs.begin() + row * n_routed, out.probs.begin() + (row + 1) * n_routed);
  }
  return r;
}

std::vector<float> RowToVector(const torch::Tensor& logits, int64_t row) {
  torch::Tensor r = logits[row].contiguous();
  return std::vector<float>(r.data_ptr<float>(), r.data_ptr<float>() + r.numel());
}

}  // namespace

int MicroBatches(const EngineOptions& options, int batch) {
  const int by_rows = batch / std::max(1, options.micro_batch_rows);
  return std::max(1, std::min(options.max_micro_batches, by_rows));
}

uint64_t TokenKey(uint64_t seed, int position) {
  return SplitMix64(SplitMix64(seed) ^ static_cast<uint64_t>(position));
}

Engine::Engine(const InferenceModel* model, MoeExecutor* executor, const EngineOptions& options)
    : model_(model),
      executor_(executor),
      options_(options),
      cache_(std::make_unique<KvCache>(model->config(), options.max_batch)),
      next_id_(options.first_id) {}

Engine::~Engine() { Stop(/*drain=*/false); }

absl::StatusOr<uint64_t> Engine::Submit(GenerateParams params, GenerateCallbacks callbacks) {
  const ModelConfig& c = model_->config();
  if (params.prompt.empty()) return absl::InvalidArgumentError("prompt: must not be empty");
  if (static_cast<int>(params.prompt.size()) >= c.context_length) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt: ", params.prompt.size(), " tokens, the context holds ",
                     c.context_length, " (at most ", c.context_length - 1,
                     " prompt tokens, to leave room for one generated token)"));
  }
  for (int id : params.prompt) {
    if (id < 0 || id >= c.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("prompt: token id ", id, " out of range"));
    }
  }
  if (params.max_new_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens: must be >= 1, got ", params.max_new_tokens));
  }
  if (absl::Status s = ValidateSampling(params.sampling); !s.ok()) return s;
  auto seq = std::make_unique<Sequence>(std::move(params), std::move(callbacks));
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("engine: shutting down");
  seq->id = next_id_;
  next_id_ += options_.id_stride;
  const uint64_t id = seq->id;
  pending_.push_back(std::move(seq));
  return id;
}

void Engine::Cancel(uint64_t request_id) {
  absl::MutexLock lock(&mu_);
  cancelled_.push_back(request_id);
}

int Engine::load() const {
  absl::MutexLock lock(&mu_);
  return live_count_ + static_cast<int>(pending_.size());
}

void Engine::Start() {
  thread_ = std::thread([this] {
    UseIntraOpThreadsOnThisThread();
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        if (live_.empty()) {
          mu_.Await(absl::Condition(
              +[](Engine* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) {
                return e->stopping_ || !e->pending_.empty();
              },
              this));
          if (stopping_ && pending_.empty()) return;
        }
      }
      Step();
    }
  });
}

void Engine::Stop(bool drain) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    drain_ = drain;
  }
  if (thread_.joinable()) thread_.join();
  // Whatever is left (never started, or stopped without draining) is cancelled.
  std::deque<std::unique_ptr<Sequence>> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(pending_);
  }
  for (auto& seq : left) seq->callbacks.on_done(absl::CancelledError("server shutting down"));
  while (!live_.empty()) Finish(live_.size() - 1, absl::CancelledError("server shutting down"));
}

void Engine::RunUntilIdle() {
  while (Step()) {
  }
}

bool Engine::Step() {
  std::vector<std::unique_ptr<Sequence>> admitted;
  std::vector<uint64_t> cancelled;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !drain_) return false;
    cancelled.swap(cancelled_);
    // Cancelled before admission: answer without running.
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (std::find(cancelled.begin(), cancelled.end(), (*it)->id) != cancelled.end()) {
        admitted.push_back(std::move(*it));
        admitted.back()->done = true;
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    while (!pending_.empty() &&
           static_cast<int>(live_.size() + admitted.size()) < options_.max_batch) {
      admitted.push_back(std::move(pending_.front()));
      pending_.pop_front();
    }
    // The admitted sequences leave pending_ now but reach live_ only during this step: counted
    // here, so that load() never misses them (EngineLanes would send a burst of arrivals to the
    // lane whose first step is under way: 32 streams once ran as ~22 in one lane and ~10 in the
    // other instead of 16 and 16).
    live_count_ = static_cast<int>(live_.size() + admitted.size());
  }
  for (size_t i = live_.size(); i-- > 0;) {
    if (std::find(cancelled.begin(), cancelled.end(), live_[i]->id) != cancelled.end()) {
      Finish(i, absl::CancelledError("cancelled"));
    }
  }
  const bool had_work = !admitted.empty() || !live_.empty();
  for (auto& seq : admitted) {
    if (seq->done) {
      seq->callbacks.on_done(absl::CancelledError("cancelled"));
    } else {
      Admit(std::move(seq));
    }
  }
  if (!live_.empty()) Decode();
  {
    absl::MutexLock lock(&mu_);
    live_count_ = static_cast<int>(live_.size());
  }
  return had_work;
}

void Engine::Admit(std::unique_ptr<Sequence> seq) {
  c10::InferenceMode guard;
  const ModelConfig& c = model_->config();
  const int slot = static_cast<int>(live_.size());
  const int64_t t = static_cast<int64_t>(seq->params.prompt.size());
  std::vector<int64_t> ids(seq->params.prompt.begin(), seq->params.prompt.end());
  std::vector<uint64_t> keys(t);
  for (int64_t p = 0; p < t; ++p)
    keys[p] = TokenKey(seq->params.sampling.seed, static_cast<int>(p));
  torch::Tensor x =
      model_->Embed(torch::tensor(ids, torch::kInt64), torch::arange(t, torch::kInt64));
  std::vector<MoeLayerOutput> layers;
  for (int l = 0; l < c.n_layers; ++l) {
    torch::Tensor h = model_->AttendPrefill(l, x, *cache_, slot);
    absl::StatusOr<MoeLayerOutput> out =
        executor_->Forward(l, model_->Ln2(l, h), keys, seq->params.want_probs);
    if (!out.ok()) {
      seq->callbacks.on_done(out.status());
      return;
    }
    x = h + out->output;
    if (seq->params.echo_prompt) layers.push_back(std::move(*out));
  }
  torch::Tensor logits = model_->Logits(x.narrow(0, t - 1, 1));
  if (seq->params.echo_prompt) {
    for (int64_t p = 0; p < t; ++p) {
      TokenOutput tok;
      tok.request_id = seq->id;
      tok.position = static_cast<int>(p);
      tok.token_id = seq->params.prompt[p];
      tok.is_prompt = true;
      for (int l = 0; l < c.n_layers; ++l) {
        tok.routing.push_back(RouteOfRow(layers[l], l, p, c.n_routed(), seq->params.want_probs));
      }
      seq->callbacks.on_token(tok);
    }
  }
  seq->length = static_cast<int>(t);
  seq->pending_token = seq->sampler.Sample(RowToVector(logits, 0));
  live_.push_back(std::move(seq));
}

void Engine::Decode() {
  c10::InferenceMode guard;
  const ModelConfig& c = model_->config();
  const int64_t b = static_cast<int64_t>(live_.size());
  std::vector<int64_t> tokens(b), positions(b);
  std::vector<uint64_t> keys(b);
  bool want_probs = false;
  for (int64_t i = 0; i < b; ++i) {
    tokens[i] = live_[i]->pending_token;
    positions[i] = live_[i]->length;
    keys[i] = TokenKey(live_[i]->params.sampling.seed, live_[i]->length);
    want_probs |= live_[i]->params.want_probs;
  }
  if (options_.on_decode_step) options_.on_decode_step(static_cast<int>(b));
  // Micro-batch j holds sequences [first[j], first[j + 1]) (cache slots alike). Each layer of
  // each part is begun on the executor right after its attention, and settled only when that
  // part needs it for its next layer: meanwhile the other parts compute theirs.
  const int m = MicroBatches(options_, static_cast<int>(b));
  std::vector<int64_t> first(m + 1);
  for (int j = 0; j <= m; ++j) first[j] = b * j / m;
  struct Part {
    DecodeBatch batch;
    std::vector<uint64_t> keys;
    torch::Tensor x, h, logits;
    std::unique_ptr<PendingMoeLayer> pending;  // h's MoE layer, under way
    std::vector<MoeLayerOutput> layers;
  };
  std::vector<Part> parts(m);
  for (int j = 0; j < m; ++j) {
    Part& p = parts[j];
    const auto from = static_cast<std::ptrdiff_t>(first[j]);
    const auto to = static_cast<std::ptrdiff_t>(first[j + 1]);
    p.batch = DecodeBatch::Make({positions.begin() + from, positions.begin() + to});
    p.batch.first_slot = first[j];
    p.keys.assign(keys.begin() + from, keys.begin() + to);
    p.x = model_->Embed(
        torch::tensor(std::vector<int64_t>(tokens.begin() + from, tokens.begin() + to),
                      torch::kInt64),
        p.batch.pos);
  }
  absl::Status failed;
  auto settle = [&failed](Part& p) {
    if (p.pending == nullptr) return;
    absl::StatusOr<MoeLayerOutput> out = p.pending->Wait();
    p.pending.reset();
    if (!out.ok()) return failed.Update(out.status());
    p.x = p.h + out->output;
    p.layers.push_back(std::move(*out));
  };
  for (int l = 0; l < c.n_layers && failed.ok(); ++l) {
    for (Part& p : parts) {
      settle(p);
      if (!failed.ok()) break;
      p.h = model_->AttendDecode(l, p.x, *cache_, p.batch);
      p.pending = executor_->Begin(l, model_->Ln2(l, p.h), p.keys, want_probs);
    }
  }
  for (Part& p : parts) {
    settle(p);
    if (failed.ok()) p.logits = model_->Logits(p.x);  // [B_j, vocab]
  }
  if (!failed.ok()) {
    parts.clear();  // waits for the layers still under way
    // The step is lost for every sequence in it.
    while (!live_.empty()) Finish(live_.size() - 1, failed);
    return;
  }
  torch::Tensor logits;  // [B, vocab]
  if (m == 1) {
    logits = parts[0].logits.contiguous();
  } else {
    std::vector<torch::Tensor> all;
    for (const Part& p : parts) all.push_back(p.logits);
    logits = torch::cat(all).contiguous();
  }
  int j = 0;  // the micro-batch of row i
  for (int64_t i = 0; i < b; ++i) {
    Sequence& seq = *live_[i];
    while (i >= first[j + 1]) ++j;
    const std::vector<MoeLayerOutput>& layers = parts[j].layers;
    TokenOutput tok;
    tok.request_id = seq.id;
    tok.position = seq.length;
    tok.token_id = seq.pending_token;
    for (int l = 0; l < c.n_layers; ++l) {
      tok.routing.push_back(
          RouteOfRow(layers[l], l, i - first[j], c.n_routed(), seq.params.want_probs));
    }
    // The sampler's last draw is this token: a sequence draws once per step, after reporting.
    if (seq.params.sampling.logprobs >= 0) tok.logprobs = seq.sampler.last_logprobs();
    ++seq.length;
    ++seq.generated;
    if (seq.pending_token == c.eos_id) {
      tok.finish_reason = "stop";
    } else if (seq.generated >= seq.params.max_new_tokens || seq.length >= c.context_length) {
      tok.finish_reason = "length";
    }
    tok.last = !tok.finish_reason.empty();
    seq.done = tok.last;
    seq.callbacks.on_token(tok);
    if (!seq.done) seq.pending_token = seq.sampler.Sample(RowToVector(logits, i));
  }
  for (size_t i = live_.size(); i-- > 0;) {
    if (live_[i]->done) Finish(i, absl::OkStatus());
  }
}

void Engine::Finish(size_t index, const absl::Status& status) {
  std::unique_ptr<Sequence> seq = std::move(live_[index]);
  const size_t last = live_.size() - 1;
  if (index != last) {
    // Keep live sequences in slots [0, batch): the last one moves into the hole.
    cache_->MoveSlot(static_cast<int>(last), static_cast<int>(index), live_[last]->length);
    live_[index] = std::move(live_[last]);
  }
  live_.pop_back();
  seq->callbacks.on_done(status);
}

EngineLanes::EngineLanes(const InferenceModel* model, MoeExecutor* executor,
                         const EngineOptions& options, int lanes)
    : lane_rows_(std::max(1, options.lane_rows)) {
  for (int i = 0; i < lanes; ++i) {
    EngineOptions o = options;
    o.first_id = static_cast<uint64_t>(i) + 1;
    o.id_stride = static_cast<uint64_t>(lanes);
    lanes_.push_back(std::make_unique<Engine>(model, executor, o));
  }
}

absl::StatusOr<uint64_t> EngineLanes::Submit(GenerateParams params, GenerateCallbacks callbacks) {
  absl::MutexLock lock(&submit_mu_);
  Engine* best = nullptr;
  int best_load = 0;
  for (const auto& lane : lanes_) {
    const int load = lane->load();
    if (load < lane_rows_) return lane->Submit(std::move(params), std::move(callbacks));
    if (best == nullptr || load < best_load) best = lane.get(), best_load = load;
  }
  return best->Submit(std::move(params), std::move(callbacks));
}

void EngineLanes::Cancel(uint64_t request_id) {
  if (request_id == 0) return;
  lanes_[(request_id - 1) % lanes_.size()]->Cancel(request_id);
}

int EngineLanes::max_batch() const {
  int total = 0;
  for (const auto& lane : lanes_) total += lane->max_batch();
  return total;
}

void EngineLanes::Start() {
  for (auto& lane : lanes_) lane->Start();
}

void EngineLanes::Stop(bool drain) {
  for (auto& lane : lanes_) lane->Stop(drain);
}

int EngineLanes::load() const {
  int total = 0;
  for (const auto& lane : lanes_) total += lane->load();
  return total;
}

}  // namespace moe
