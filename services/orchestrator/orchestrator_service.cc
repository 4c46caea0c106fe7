#include "services/orchestrator/orchestrator_service.h"

#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "services/common/status.h"

namespace moe {
namespace {

using moe::v1::GenerateResponse;
using moe::v1::RoutingEvent;

// A server stream that writes queued messages one at a time. Enqueue and Close may be called
// from any thread; neither blocks. Kept alive by shared_ptr: gRPC's OnDone drops the stream's
// own reference, producers hold theirs until they are done.
template <typename Msg>
class QueuedWriter : public grpc::ServerWriteReactor<Msg>,
                     public std::enable_shared_from_this<QueuedWriter<Msg>> {
 public:
  void Enqueue(Msg m) {
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      queue_.push_back(std::move(m));
      if (writing_) return;
      writing_ = true;
      current_ = std::move(queue_.front());
      queue_.pop_front();
    }
    this->StartWrite(&current_);
  }

  // Finishes after the queued messages are written.
  void Close(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      finishing_ = true;
      final_ = status;
      if (writing_ || !queue_.empty()) return;
      finished_ = true;
    }
    this->Finish(status);
  }

  void OnWriteDone(bool ok) override {
    bool write = false, finish = false;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        queue_.clear();
        if (!finished_) {
          if (!finishing_) final_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream broken");
          finishing_ = finished_ = finish = true;
        }
      } else if (!queue_.empty()) {
        current_ = std::move(queue_.front());
        queue_.pop_front();
        writing_ = write = true;
      } else if (finishing_ && !finished_) {
        finished_ = finish = true;
      }
    }
    if (write) this->StartWrite(&current_);
    if (finish) this->Finish(final_);
  }

  void OnDone() override {
    Released();
    self_.reset();  // may delete this
  }

  // Call right after creation, before returning the reactor to gRPC.
  void Retain() { self_ = this->shared_from_this(); }

 protected:
  virtual void Released() {}
  absl::Mutex mu_;
  std::deque<Msg> queue_ ABSL_GUARDED_BY(mu_);
  Msg current_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_;
  std::shared_ptr<QueuedWriter<Msg>> self_;
};

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

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

}  // namespace

absl::StatusOr<GenerateParams> ParseGenerateRequest(const moe::v1::GenerateRequest& req,
                                                    const ModelConfig& config,
                                                    const Tokenizer& tokenizer) {
  GenerateParams p;
  if (req.prompt().empty()) return absl::InvalidArgumentError("prompt: must not be empty");
  if (req.prompt().size() > kMaxPromptBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt: ", req.prompt().size(), " bytes, at most ", kMaxPromptBytes));
  }
  p.max_new_tokens = req.has_max_tokens() ? req.max_tokens() : kDefaultMaxTokens;
  if (p.max_new_tokens < 1 || p.max_new_tokens > kMaxTokensLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens: must be in [1, ", kMaxTokensLimit, "], got ", p.max_new_tokens));
  }
  p.sampling.temperature = req.has_temperature() ? req.temperature() : kDefaultTemperature;
  p.sampling.top_k = req.has_top_k() ? req.top_k() : 0;
  p.sampling.top_p = req.has_top_p() ? req.top_p() : 1.0f;
  p.sampling.seed = req.has_seed() ? req.seed() : std::random_device{}() | (uint64_t{1} << 40);
  if (absl::Status s = ValidateSampling(p.sampling); !s.ok()) return s;
  p.prompt = tokenizer.Encode(req.prompt());
  if (static_cast<int>(p.prompt.size()) >= config.context_length) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt: ", p.prompt.size(), " tokens; the context holds ", config.context_length,
        ", so a prompt may have at most ", config.context_length - 1,
        " (prompts are refused, not "
        "truncated)"));
  }
  p.echo_prompt = req.echo_prompt();
  p.want_probs = req.include_probs();
  return p;
}

// One request's state, shared by its stream (or unary reactor) and the engine's callbacks.
struct OrchestratorService::Request {
  OrchestratorService* service;
  std::string id;
  GenerateParams params;
  std::unique_ptr<StreamDecoder> decoder;
  absl::Time start;
  absl::Time last_token;
  int generated = 0;
  bool echo_prompt = false;  // the client wants prompt tokens too (events always get them)
  std::function<void(GenerateResponse)> on_message;  // engine thread
  std::function<void(const absl::Status&)> on_finish;

  absl::Mutex mu;
  uint64_t engine_id ABSL_GUARDED_BY(mu) = 0;
  bool cancel_asked ABSL_GUARDED_BY(mu) = false;

  void Cancel() {
    uint64_t id;
    {
      absl::MutexLock lock(&mu);
      cancel_asked = true;
      id = engine_id;
    }
    if (id != 0) service->deps_.engine->Cancel(id);
  }
};

OrchestratorService::OrchestratorService(OrchestratorDeps deps, prometheus::Registry& registry)
    : deps_(std::move(deps)) {
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

std::string OrchestratorService::NextRequestId() {
  return absl::StrCat("req-", next_id_.fetch_add(1));
}

void OrchestratorService::CountFinished(grpc::StatusCode code) {
  requests_->Add({{"code", GrpcCodeName(code)}}).Increment();
  inflight_->Decrement();
}

absl::Status OrchestratorService::Start(std::shared_ptr<Request> r,
                                        const moe::v1::GenerateRequest& req) {
  inflight_->Increment();
  absl::StatusOr<GenerateParams> params = ParseGenerateRequest(req, deps_.config, *deps_.tokenizer);
  if (!params.ok()) {
    CountFinished(grpc::StatusCode::INVALID_ARGUMENT);
    return params.status();
  }
  r->service = this;
  r->id = NextRequestId();
  r->params = *params;
  r->echo_prompt = r->params.echo_prompt;
  r->params.echo_prompt = true;
  r->decoder = std::make_unique<StreamDecoder>(deps_.tokenizer);
  r->start = absl::Now();
  const int m = deps_.config.granularity;
  EventHub* hub = deps_.hub;
  {
    RoutingEvent ev;
    ev.set_time_unix_micros(NowMicros());
    moe::v1::RequestStarted* s = ev.mutable_started();
    s->set_request_id(r->id);
    s->set_prompt(SanitizeUtf8(req.prompt()));
    s->set_prompt_tokens(static_cast<int>(r->params.prompt.size()));
    s->set_max_tokens(r->params.max_new_tokens);
    hub->PublishLifecycle(r->id, ev);
  }
  GenerateCallbacks cb;
  cb.on_token = [this, r, m, hub](const TokenOutput& t) {
    GenerateResponse msg;
    msg.set_request_id(r->id);
    msg.set_position(t.position);
    msg.set_token_id(t.token_id);
    msg.set_is_prompt(t.is_prompt);
    const std::string token_text = SanitizeUtf8(deps_.tokenizer->TokenBytes(t.token_id));
    if (t.is_prompt) {
      msg.set_text(token_text);
    } else {
      const absl::Time now = absl::Now();
      if (r->generated == 0) {
        ttft_->Observe(absl::ToDoubleSeconds(now - r->start));
        msg.set_seed(r->params.sampling.seed);
      } else {
        itl_->Observe(absl::ToDoubleSeconds(now - r->last_token));
      }
      r->last_token = now;
      ++r->generated;
      tokens_generated_->Increment();
      hub->CountGeneratedToken();
      std::string text;
      if (t.token_id != deps_.config.eos_id) text = r->decoder->Next(t.token_id);
      if (t.last) text += r->decoder->Finish();
      msg.set_text(text);
    }
    if (t.last) msg.set_finish_reason(t.finish_reason);
    for (const LayerRoute& route : t.routing) {
      FillLayer(route, m, r->params.want_probs, msg.add_routing());
      hub->CountRouting(route.layer, route.ids);
      hub->PublishToken(r->id, t.position, route.layer, [&](bool probs) {
        RoutingEvent ev;
        ev.set_time_unix_micros(NowMicros());
        moe::v1::TokenRouted* tok = ev.mutable_token();
        tok->set_request_id(r->id);
        tok->set_position(t.position);
        tok->set_token_id(t.token_id);
        tok->set_text(token_text);
        tok->set_is_prompt(t.is_prompt);
        FillLayer(route, m, probs, tok->mutable_routing());
        return ev;
      });
    }
    if (r->on_message && (!t.is_prompt || r->echo_prompt)) r->on_message(std::move(msg));
  };
  cb.on_done = [this, r, hub](const absl::Status& status) {
    RoutingEvent ev;
    ev.set_time_unix_micros(NowMicros());
    moe::v1::RequestFinished* f = ev.mutable_finished();
    f->set_request_id(r->id);
    f->set_generated_tokens(r->generated);
    f->set_finish_reason(status.ok()                                     ? "done"
                         : status.code() == absl::StatusCode::kCancelled ? "cancelled"
                                                                         : "error");
    if (!status.ok()) f->set_error(std::string(status.message()));
    hub->PublishLifecycle(r->id, ev);
    CountFinished(ToGrpcStatus(status).error_code());
    if (!status.ok()) {
      deps_.logger->Warn("request_failed", {{"request_id", r->id}, {"error", status.ToString()}});
    }
    if (r->on_finish) r->on_finish(status);
  };
  absl::StatusOr<uint64_t> id = deps_.engine->Submit(r->params, std::move(cb));
  if (!id.ok()) {
    CountFinished(ToGrpcStatus(id.status()).error_code());
    return id.status();
  }
  bool cancel;
  {
    absl::MutexLock lock(&r->mu);
    r->engine_id = *id;
    cancel = r->cancel_asked;
  }
  if (cancel) deps_.engine->Cancel(*id);
  return absl::OkStatus();
}

namespace {

class GenerateReactor : public QueuedWriter<GenerateResponse> {
 public:
  void Begin(const std::shared_ptr<OrchestratorService::Request>& r,
             const std::function<absl::Status()>& start) {
    request_ = r;
    // The engine's callbacks keep the stream alive until the request is over.
    auto self = std::static_pointer_cast<GenerateReactor>(shared_from_this());
    r->on_message = [self](GenerateResponse m) { self->Enqueue(std::move(m)); };
    r->on_finish = [self](const absl::Status& s) { self->Close(ToGrpcStatus(s)); };
    if (absl::Status s = start(); !s.ok()) {
      r->on_message = nullptr;
      r->on_finish = nullptr;
      Close(ToGrpcStatus(s));
    }
  }
  void OnCancel() override {
    if (auto r = request_.lock()) r->Cancel();
    Close(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
  }

 private:
  std::weak_ptr<OrchestratorService::Request> request_;
};

class CompleteReactor : public grpc::ServerUnaryReactor {
 public:
  explicit CompleteReactor(moe::v1::CompleteResponse* resp) : resp_(resp) {}
  void OnCancel() override {
    if (auto r = request_.lock()) r->Cancel();
  }
  void OnDone() override { self_.reset(); }
  std::weak_ptr<OrchestratorService::Request> request_;
  moe::v1::CompleteResponse* resp_;
  std::shared_ptr<CompleteReactor> self_;
};

// Keeps each WatchRouting message well under a megabyte even with full gate probabilities.
constexpr size_t kMaxEventsPerMessage = 512;

class WatchReactor : public QueuedWriter<grpc::ByteBuffer> {
 public:
  explicit WatchReactor(EventHub* hub) : hub_(hub) {}
  void Begin(const moe::v1::WatchRoutingRequest& req) {
    std::weak_ptr<QueuedWriter<grpc::ByteBuffer>> weak = shared_from_this();
    absl::StatusOr<std::shared_ptr<EventHub::Subscriber>> sub = hub_->Subscribe(req, [weak] {
      if (auto self = weak.lock()) static_cast<WatchReactor*>(self.get())->Drain();
    });
    if (!sub.ok()) {
      Close(ToGrpcStatus(sub.status()));
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      sub_ = *sub;
    }
    Drain();  // events published before sub_ was set had no one to wake
  }
  void OnWriteDone(bool ok) override {
    QueuedWriter<grpc::ByteBuffer>::OnWriteDone(ok);
    Drain();
  }
  void OnCancel() override { Close(grpc::Status::OK); }

 private:
  // Moves what the hub has queued into the stream as one message, one message in flight at a
  // time, so a slow reader only ever holds its bounded hub queue. Called by the hub's delivery
  // thread and by gRPC after each write; one caller drains at a time (a second one asks the
  // first to go round again), so batches cannot overtake each other.
  void Drain() {
    std::shared_ptr<EventHub::Subscriber> sub;
    {
      absl::MutexLock lock(&mu_);
      if (sub_ == nullptr) return;
      if (draining_) {
        again_ = true;
        return;
      }
      draining_ = true;
      sub = sub_;
    }
    for (;;) {
      bool idle;
      {
        absl::MutexLock lock(&mu_);
        again_ = false;
        idle = !writing_ && !finishing_;
      }
      auto wire = idle ? std::make_unique<std::string>() : nullptr;
      if (wire != nullptr && sub->PopBatch(kMaxEventsPerMessage, wire.get())) {
        // The slice takes the string over (no copy) and deletes it when gRPC is done with it.
        std::string* owned = wire.release();
        grpc::Slice slice(
            owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); },
            owned);
        Enqueue(grpc::ByteBuffer(&slice, 1));  // may run OnWriteDone -> Drain inline: again_
      }
      absl::MutexLock lock(&mu_);
      if (!again_) {
        draining_ = false;
        return;
      }
    }
  }
  void Released() override {
    std::shared_ptr<EventHub::Subscriber> sub;
    {
      absl::MutexLock lock(&mu_);
      sub = sub_;
    }
    if (sub != nullptr) hub_->Unsubscribe(sub);
  }
  EventHub* hub_;
  std::shared_ptr<EventHub::Subscriber> sub_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool again_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerWriteReactor<GenerateResponse>* OrchestratorService::Generate(
    grpc::CallbackServerContext*, const moe::v1::GenerateRequest* req) {
  auto reactor = std::make_shared<GenerateReactor>();
  reactor->Retain();
  auto r = std::make_shared<Request>();
  reactor->Begin(r, [this, r, req] { return Start(r, *req); });
  return reactor.get();
}

grpc::ServerUnaryReactor* OrchestratorService::Complete(grpc::CallbackServerContext*,
                                                        const moe::v1::GenerateRequest* req,
                                                        moe::v1::CompleteResponse* resp) {
  auto reactor = std::make_shared<CompleteReactor>(resp);
  reactor->self_ = reactor;
  auto r = std::make_shared<Request>();
  reactor->request_ = r;
  auto text = std::make_shared<std::string>();
  r->on_message = [reactor, text](GenerateResponse m) {
    if (m.is_prompt()) return;
    *text += m.text();
    reactor->resp_->add_token_ids(m.token_id());
    if (!m.finish_reason().empty()) reactor->resp_->set_finish_reason(m.finish_reason());
    if (m.seed() != 0) reactor->resp_->set_seed(m.seed());
  };
  // The engine's callbacks own r while they run: a raw pointer avoids a cycle.
  Request* raw = r.get();
  r->on_finish = [reactor, text, raw](const absl::Status& s) {
    reactor->resp_->set_request_id(raw->id);
    reactor->resp_->set_text(*text);
    reactor->resp_->set_prompt_tokens(static_cast<int>(raw->params.prompt.size()));
    reactor->Finish(ToGrpcStatus(s));
  };
  if (absl::Status s = Start(r, *req); !s.ok()) {
    r->on_message = nullptr;
    r->on_finish = nullptr;
    reactor->Finish(ToGrpcStatus(s));
  }
  return reactor.get();
}

grpc::ServerUnaryReactor* OrchestratorService::GetModelInfo(grpc::CallbackServerContext* ctx,
                                                            const moe::v1::GetModelInfoRequest*,
                                                            moe::v1::ModelInfo* info) {
  const ModelConfig& c = deps_.config;
  info->set_model_id(ModelId(c));
  info->set_name(c.name);
  info->set_vocab_size(c.vocab_size);
  info->set_d_model(c.d_model);
  info->set_n_heads(c.n_heads);
  info->set_n_layers(c.n_layers);
  info->set_context_length(c.context_length);
  info->set_n_experts(c.n_experts);
  info->set_n_shared(c.n_shared);
  info->set_granularity(c.granularity);
  info->set_top_k(c.top_k);
  info->set_d_ff(c.d_ff);
  info->set_parameters(c.ParameterCount());
  info->set_active_parameters(c.ActiveParameterCount());
  info->set_expert_profiles_json(deps_.profiles_json);
  info->set_max_batch(deps_.engine->max_batch());
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* OrchestratorService::GetPlacement(grpc::CallbackServerContext* ctx,
                                                            const moe::v1::GetPlacementRequest*,
                                                            moe::v1::Placement* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  // Asked of the router, which knows pool health; answered when it answers.
  struct Call {
    grpc::ClientContext ctx;
    moe::v1::GetPlacementRequest req;
  };
  auto call = std::make_shared<Call>();
  call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  deps_.router->async()->GetPlacement(
      &call->ctx, &call->req, resp, [reactor, call](grpc::Status st) {
        reactor->Finish(
            st.ok() ? st
                    : grpc::Status(st.error_code(), absl::StrCat("router: ", st.error_message())));
      });
  return reactor;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* OrchestratorService::WatchRouting(
    grpc::CallbackServerContext*, const grpc::ByteBuffer* raw) {
  auto reactor = std::make_shared<WatchReactor>(deps_.hub);
  reactor->Retain();
  moe::v1::WatchRoutingRequest req;
  grpc::ByteBuffer copy(*raw);  // shares the slices
  if (grpc::Status s =
          grpc::SerializationTraits<moe::v1::WatchRoutingRequest>::Deserialize(&copy, &req);
      !s.ok()) {
    reactor->Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "request: not a moe.v1.WatchRoutingRequest"));
  } else {
    reactor->Begin(req);
  }
  return reactor.get();
}

}  // namespace moe
