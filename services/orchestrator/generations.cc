#include "services/orchestrator/generations.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/common/status.h"
#include "services/orchestrator/generate_request.h"

namespace moe {
namespace {

using moe::v1::GenerateResponse;
using moe::v1::RoutingEvent;

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

void FillLayer(const LayerRoute& r, int granularity, bool probs, moe::v1::LayerRouting* out) {
  out->set_layer(r.layer);
  out->set_latency_ms(r.latency_ms);
  for (size_t i = 0; i < r.ids.size(); ++i) {
    moe::v1::ExpertChoice* c = out->add_experts();
    c->set_id(r.ids[i]);
    c->set_expert(r.ids[i] / granularity);
    c->set_micro(r.ids[i] % granularity);
    c->set_weight(r.weights[i]);
    c->set_pool(r.pools[i]);
  }
  for (size_t s = 0; s < r.shared_pools.size(); ++s) {
    moe::v1::SharedChoice* c = out->add_shared();
    c->set_expert(static_cast<int32_t>(s));
    c->set_pool(r.shared_pools[s]);
  }
  if (probs) out->mutable_probs()->Add(r.probs.begin(), r.probs.end());
}

}  // namespace

void Generation::Cancel() {
  std::vector<uint64_t> ids;
  EngineLanes* e;
  {
    absl::MutexLock lock(&mu);
    cancel_asked = true;
    ids = engine_ids;
    e = engine;
  }
  for (uint64_t id : ids) {
    if (id != 0) e->Cancel(id);
  }
}

void Generation::CancelCompletion(int index) {
  uint64_t id;
  {
    absl::MutexLock lock(&mu);
    stop_asked[index] = true;
    id = engine_ids[index];
  }
  if (id != 0) engine->Cancel(id);
}

Generations::Generations(const ModelConfig& config, const Tokenizer* tokenizer, EngineLanes* engine,
                         EventHub* hub, const Logger* logger, prometheus::Registry& registry,
                         int max_requests)
    : config_(config),
      tokenizer_(tokenizer),
      engine_(engine),
      hub_(hub),
      logger_(logger),
      max_requests_(max_requests) {
  requests_ = &prometheus::BuildCounter()
                   .Name("moe_generate_requests_total")
                   .Help("Generate and Complete requests by final gRPC status")
                   .Register(registry);
  requests_->Add({{"code", "OK"}});
  tokens_generated_ = &prometheus::BuildCounter()
                           .Name("moe_tokens_generated_total")
                           .Help("Tokens generated (prompt tokens not included)")
                           .Register(registry)
                           .Add({});
  const prometheus::Histogram::BucketBoundaries latency = {
      1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 5};
  ttft_ = &prometheus::BuildHistogram()
               .Name("moe_time_to_first_token_seconds")
               .Help("From request arrival to its first generated token")
               .Register(registry)
               .Add({}, latency);
  itl_ = &prometheus::BuildHistogram()
              .Name("moe_inter_token_latency_seconds")
              .Help("Between consecutive generated tokens of a request")
              .Register(registry)
              .Add({}, latency);
  inflight_ = &prometheus::BuildGauge()
                   .Name("moe_inflight_requests")
                   .Help("Generate/Complete requests being served")
                   .Register(registry)
                   .Add({});
}

void Generations::CountFinished(absl::StatusCode code, int n) {
  // absl and gRPC share the canonical code numbering.
  requests_->Add({{"code", GrpcCodeName(static_cast<grpc::StatusCode>(code))}}).Increment();
  inflight_->Decrement();
  admitted_.fetch_sub(n);
}

absl::Status Generations::Start(std::shared_ptr<Generation> g,
                                const moe::v1::GenerateRequest& req) {
  inflight_->Increment();
  absl::StatusOr<ParsedGenerateRequest> parsed = ParseGenerateRequest(req, config_, *tokenizer_);
  if (!parsed.ok()) {
    CountFinished(parsed.status().code(), 0);
    return parsed.status();
  }
  const int n = parsed->n;
  if (const int before = admitted_.fetch_add(n); before + n > max_requests_) {
    CountFinished(absl::StatusCode::kResourceExhausted, n);
    return absl::ResourceExhaustedError(absl::StrCat(
        "orchestrator: ", before, " requests in flight, at most --max_requests=", max_requests_,
        "; retry later"));
  }
  g->id = absl::StrCat("req-", next_id_.fetch_add(1));
  g->params = std::move(parsed->params);
  g->n = n;
  g->echo_prompt = g->params.echo_prompt;
  g->params.echo_prompt = true;  // the event stream shows prompt tokens whatever the client asked
  g->start = absl::Now();
  g->completions.resize(n);
  for (int i = 0; i < n; ++i) {
    Generation::Completion& c = g->completions[i];
    c.event_id = i == 0 ? g->id : absl::StrCat(g->id, "/", i);
    c.seed = SeedOf(g->params.sampling.seed, i);
    c.decoder = std::make_unique<StreamDecoder>(tokenizer_);
    c.stop = StopText(parsed->stop);
  }
  {
    absl::MutexLock lock(&g->mu);
    g->engine = engine_;
    g->engine_ids.assign(n, 0);
    g->stop_asked.assign(n, false);
    g->running = n;
  }
  for (const Generation::Completion& c : g->completions) {
    RoutingEvent ev;
    ev.set_time_unix_micros(NowMicros());
    moe::v1::RequestStarted* s = ev.mutable_started();
    s->set_request_id(c.event_id);
    s->set_prompt(SanitizeUtf8(req.prompt()));
    s->set_prompt_tokens(static_cast<int>(g->params.prompt.size()));
    s->set_max_tokens(g->params.max_new_tokens);
    hub_->PublishLifecycle(c.event_id, ev);
  }
  for (int i = 0; i < n; ++i) {
    GenerateParams params = g->params;
    params.sampling.seed = g->completions[i].seed;
    // The engine's callbacks own g until the request is over.
    GenerateCallbacks cb;
    cb.on_token = [this, g, i](const TokenOutput& t) { OnToken(g, i, t); };
    cb.on_done = [this, g, i](const absl::Status& status) { OnDone(g, i, status); };
    absl::StatusOr<uint64_t> id = engine_->Submit(std::move(params), std::move(cb));
    if (!id.ok()) {
      if (i == 0) {
        CountFinished(id.status().code(), n);
        return id.status();
      }
      // Completions before this one run: the request fails through them (shutting down).
      for (int j = i; j < n; ++j) OnDone(g, j, id.status());
      return absl::OkStatus();
    }
    bool cancel;
    {
      absl::MutexLock lock(&g->mu);
      g->engine_ids[i] = *id;
      cancel = g->cancel_asked || g->stop_asked[i] || !g->status.ok();
    }
    if (cancel) engine_->Cancel(*id);
  }
  return absl::OkStatus();
}

void Generations::OnToken(const std::shared_ptr<Generation>& gp, int index, const TokenOutput& t) {
  Generation& g = *gp;
  Generation::Completion& c = g.completions[index];
  if (c.stopped) return;
  GenerateResponse msg;
  msg.set_request_id(g.id);
  msg.set_index(index);
  msg.set_position(t.position);
  msg.set_token_id(t.token_id);
  msg.set_is_prompt(t.is_prompt);
  const std::string token_text = SanitizeUtf8(tokenizer_->TokenBytes(t.token_id));
  std::string finish_reason = t.last ? t.finish_reason : "";
  if (t.is_prompt) {
    msg.set_text(token_text);
  } else {
    const absl::Time now = absl::Now();
    if (c.generated == 0) {
      ttft_->Observe(absl::ToDoubleSeconds(now - g.start));
      msg.set_seed(c.seed);
    } else {
      itl_->Observe(absl::ToDoubleSeconds(now - c.last_token));
    }
    c.last_token = now;
    ++c.generated;
    tokens_generated_->Increment();
    hub_->CountGeneratedToken();
    std::string text;
    if (t.token_id != config_.eos_id) text = c.decoder->Next(t.token_id);
    if (t.last) text += c.decoder->Finish();
    StopText::Step step = c.stop.Add(text);
    if (step.stopped) {
      c.stopped = true;
      finish_reason = "stop";
    } else if (t.last) {
      step.text += c.stop.Flush();
    }
    msg.set_text(std::move(step.text));
    if (g.params.sampling.logprobs >= 0) {
      moe::v1::TokenLogprobs* lp = msg.mutable_logprobs();
      lp->set_token(token_text);
      lp->set_logprob(t.logprobs.logprob);
      for (const LogprobEntry& e : t.logprobs.top) {
        moe::v1::TokenLogprobs::Alternative* a = lp->add_top();
        a->set_token_id(e.token_id);
        a->set_token(SanitizeUtf8(tokenizer_->TokenBytes(e.token_id)));
        a->set_logprob(e.logprob);
      }
    }
  }
  if (!finish_reason.empty()) msg.set_finish_reason(finish_reason);
  const int m = config_.granularity;
  for (const LayerRoute& route : t.routing) {
    FillLayer(route, m, g.params.want_probs, msg.add_routing());
    hub_->CountRouting(route.layer, route.ids);
    hub_->PublishToken(c.event_id, t.position, route.layer, [&](bool probs) {
      RoutingEvent ev;
      ev.set_time_unix_micros(NowMicros());
      moe::v1::TokenRouted* tok = ev.mutable_token();
      tok->set_request_id(c.event_id);
      tok->set_position(t.position);
      tok->set_token_id(t.token_id);
      tok->set_text(token_text);
      tok->set_is_prompt(t.is_prompt);
      FillLayer(route, m, probs, tok->mutable_routing());
      return ev;
    });
  }
  if (g.on_message && (!t.is_prompt || g.echo_prompt)) {
    deliver_.Post([gp, msg = std::move(msg)]() mutable { gp->on_message(std::move(msg)); });
  }
  // The engine ends the sequence before its next step; OnDone turns that CANCELLED into success.
  if (c.stopped && !t.last) g.CancelCompletion(index);
}

void Generations::OnDone(const std::shared_ptr<Generation>& gp, int index, absl::Status status) {
  Generation& g = *gp;
  Generation::Completion& c = g.completions[index];
  if (c.stopped && status.code() == absl::StatusCode::kCancelled) status = absl::OkStatus();
  RoutingEvent ev;
  ev.set_time_unix_micros(NowMicros());
  moe::v1::RequestFinished* f = ev.mutable_finished();
  f->set_request_id(c.event_id);
  f->set_generated_tokens(c.generated);
  f->set_finish_reason(status.ok()                                     ? "done"
                       : status.code() == absl::StatusCode::kCancelled ? "cancelled"
                                                                       : "error");
  if (!status.ok()) f->set_error(std::string(status.message()));
  hub_->PublishLifecycle(c.event_id, ev);
  if (!status.ok()) {
    logger_->Warn("request_failed", {{"request_id", c.event_id}, {"error", status.ToString()}});
  }
  std::vector<uint64_t> others;  // to cancel: one completion failed, so the request has
  bool last;
  absl::Status final_status;
  {
    absl::MutexLock lock(&g.mu);
    if (!status.ok() && g.status.ok()) {
      g.status = status;
      for (int i = 0; i < g.n; ++i) {
        if (i != index && g.engine_ids[i] != 0) others.push_back(g.engine_ids[i]);
      }
    }
    last = --g.running == 0;
    final_status = g.status;
  }
  for (uint64_t id : others) engine_->Cancel(id);
  if (!last) return;
  CountFinished(final_status.code(), g.n);
  deliver_.Post([gp, final_status] {
    if (gp->on_finish) gp->on_finish(final_status);
  });
}

}  // namespace moe
