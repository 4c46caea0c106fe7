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
  uint64_t id;
  EngineLanes* e;
  {
    absl::MutexLock lock(&mu);
    cancel_asked = true;
    id = engine_id;
    e = engine;
  }
  if (id != 0) e->Cancel(id);
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

void Generations::CountFinished(absl::StatusCode code) {
  // absl and gRPC share the canonical code numbering.
  requests_->Add({{"code", GrpcCodeName(static_cast<grpc::StatusCode>(code))}}).Increment();
  inflight_->Decrement();
  admitted_.fetch_sub(1);
}

absl::Status Generations::Start(std::shared_ptr<Generation> g,
                                const moe::v1::GenerateRequest& req) {
  inflight_->Increment();
  if (const int before = admitted_.fetch_add(1); before >= max_requests_) {
    CountFinished(absl::StatusCode::kResourceExhausted);
    return absl::ResourceExhaustedError(absl::StrCat(
        "orchestrator: ", before, " requests in flight, at most --max_requests=", max_requests_,
        "; retry later"));
  }
  absl::StatusOr<GenerateParams> params = ParseGenerateRequest(req, config_, *tokenizer_);
  if (!params.ok()) {
    CountFinished(params.status().code());
    return params.status();
  }
  g->id = absl::StrCat("req-", next_id_.fetch_add(1));
  g->params = *std::move(params);
  g->echo_prompt = g->params.echo_prompt;
  g->params.echo_prompt = true;  // the event stream shows prompt tokens whatever the client asked
  g->decoder = std::make_unique<StreamDecoder>(tokenizer_);
  g->start = absl::Now();
  {
    absl::MutexLock lock(&g->mu);
    g->engine = engine_;
  }
  {
    RoutingEvent ev;
    ev.set_time_unix_micros(NowMicros());
    moe::v1::RequestStarted* s = ev.mutable_started();
    s->set_request_id(g->id);
    s->set_prompt(SanitizeUtf8(req.prompt()));
    s->set_prompt_tokens(static_cast<int>(g->params.prompt.size()));
    s->set_max_tokens(g->params.max_new_tokens);
    hub_->PublishLifecycle(g->id, ev);
  }
  // The engine's callbacks own g until the request is over.
  GenerateCallbacks cb;
  cb.on_token = [this, g](const TokenOutput& t) { OnToken(*g, t); };
  cb.on_done = [this, g](const absl::Status& status) { OnDone(*g, status); };
  absl::StatusOr<uint64_t> id = engine_->Submit(g->params, std::move(cb));
  if (!id.ok()) {
    CountFinished(id.status().code());
    return id.status();
  }
  bool cancel;
  {
    absl::MutexLock lock(&g->mu);
    g->engine_id = *id;
    cancel = g->cancel_asked;
  }
  if (cancel) engine_->Cancel(*id);
  return absl::OkStatus();
}

void Generations::OnToken(Generation& g, const TokenOutput& t) {
  GenerateResponse msg;
  msg.set_request_id(g.id);
  msg.set_position(t.position);
  msg.set_token_id(t.token_id);
  msg.set_is_prompt(t.is_prompt);
  const std::string token_text = SanitizeUtf8(tokenizer_->TokenBytes(t.token_id));
  if (t.is_prompt) {
    msg.set_text(token_text);
  } else {
    const absl::Time now = absl::Now();
    if (g.generated == 0) {
      ttft_->Observe(absl::ToDoubleSeconds(now - g.start));
      msg.set_seed(g.params.sampling.seed);
    } else {
      itl_->Observe(absl::ToDoubleSeconds(now - g.last_token));
    }
    g.last_token = now;
    ++g.generated;
    tokens_generated_->Increment();
    hub_->CountGeneratedToken();
    std::string text;
    if (t.token_id != config_.eos_id) text = g.decoder->Next(t.token_id);
    if (t.last) text += g.decoder->Finish();
    msg.set_text(text);
  }
  if (t.last) msg.set_finish_reason(t.finish_reason);
  const int m = config_.granularity;
  for (const LayerRoute& route : t.routing) {
    FillLayer(route, m, g.params.want_probs, msg.add_routing());
    hub_->CountRouting(route.layer, route.ids);
    hub_->PublishToken(g.id, t.position, route.layer, [&](bool probs) {
      RoutingEvent ev;
      ev.set_time_unix_micros(NowMicros());
      moe::v1::TokenRouted* tok = ev.mutable_token();
      tok->set_request_id(g.id);
      tok->set_position(t.position);
      tok->set_token_id(t.token_id);
      tok->set_text(token_text);
      tok->set_is_prompt(t.is_prompt);
      FillLayer(route, m, probs, tok->mutable_routing());
      return ev;
    });
  }
  if (g.on_message && (!t.is_prompt || g.echo_prompt)) g.on_message(std::move(msg));
}

void Generations::OnDone(Generation& g, const absl::Status& status) {
  RoutingEvent ev;
  ev.set_time_unix_micros(NowMicros());
  moe::v1::RequestFinished* f = ev.mutable_finished();
  f->set_request_id(g.id);
  f->set_generated_tokens(g.generated);
  f->set_finish_reason(status.ok()                                     ? "done"
                       : status.code() == absl::StatusCode::kCancelled ? "cancelled"
                                                                       : "error");
  if (!status.ok()) f->set_error(std::string(status.message()));
  hub_->PublishLifecycle(g.id, ev);
  CountFinished(status.code());
  if (!status.ok()) {
    logger_->Warn("request_failed", {{"request_id", g.id}, {"error", status.ToString()}});
  }
  if (g.on_finish) g.on_finish(status);
}

}  // namespace moe
