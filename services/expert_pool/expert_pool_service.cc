#include "services/expert_pool/expert_pool_service.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/common/status.h"
#include "services/common/tensor_codec.h"

namespace moe {

ExpertPoolService::ExpertPoolService(const ModelConfig& config, ExpertPoolOptions options,
                                     std::map<std::string, torch::Tensor> expert_state,
                                     ExpertBank bank, prometheus::Registry& registry)
    : config_(config),
      options_(std::move(options)),
      expert_state_(std::move(expert_state)),
      bank_(std::make_shared<const ExpertBank>(std::move(bank))) {
  const std::string& pool = options_.name;
  auto& computed =
      prometheus::BuildCounter()
          .Name("moe_expert_tokens_computed_total")
          .Help("Tokens each expert computed on this pool (expert sN = shared expert N)")
          .Register(registry);
  // Every expert, hosted now or not: what a pool hosts changes at runtime.
  for (int l = 0; l < config_.n_layers; ++l) {
    for (int e = 0; e < config_.n_experts; ++e) {
      computed_[{l, e}] =
          &computed.Add({{"layer", absl::StrCat(l)}, {"expert", absl::StrCat(e)}, {"pool", pool}});
    }
    for (int s = 0; s < config_.n_shared; ++s) {
      computed_[{l, -1 - s}] = &computed.Add(
          {{"layer", absl::StrCat(l)}, {"expert", absl::StrCat("s", s)}, {"pool", pool}});
    }
  }
  forward_seconds_ = &prometheus::BuildHistogram()
                          .Name("moe_forward_duration_seconds")
                          .Help("Forward calls and ForwardStream messages, server side")
                          .Register(registry)
                          .Add({{"pool", pool}}, prometheus::Histogram::BucketBoundaries{
                                                     5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3,
                                                     1e-2, 2.5e-2, 0.1, 1});
  loaded_ = &prometheus::BuildCounter()
                 .Name("moe_experts_loaded_total")
                 .Help("Experts loaded at runtime (LoadExperts), routed and shared")
                 .Register(registry)
                 .Add({{"pool", pool}});
  dropped_ = &prometheus::BuildCounter()
                  .Name("moe_experts_dropped_total")
                  .Help("Experts dropped at runtime (DropExperts), routed and shared")
                  .Register(registry)
                  .Add({{"pool", pool}});
  change_seconds_ = &prometheus::BuildHistogram()
                         .Name("moe_expert_change_duration_seconds")
                         .Help(
                             "LoadExperts and DropExperts, from request to the swap (drops: "
                             "until no call computes them)")
                         .Register(registry)
                         .Add({{"pool", pool}}, prometheus::Histogram::BucketBoundaries{
                                                    1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1, 5, 30});
  auto& hosted = prometheus::BuildGauge()
                     .Name("moe_experts_hosted")
                     .Help("Routed base experts this pool hosts, per layer")
                     .Register(registry);
  for (int l = 0; l < config_.n_layers; ++l) {
    hosted_.push_back(&hosted.Add({{"pool", pool}, {"layer", absl::StrCat(l)}}));
  }
  UpdateHostedGauges(*bank_);
}

std::shared_ptr<const ExpertBank> ExpertPoolService::bank() const {
  absl::MutexLock lock(&mu_);
  return bank_;
}

void ExpertPoolService::UpdateHostedGauges(const ExpertBank& bank) {
  for (int l = 0; l < config_.n_layers; ++l) {
    int n = 0;
    for (int e = 0; e < config_.n_experts; ++e) n += bank.Hosts(l, e, false, config_.granularity);
    hosted_[l]->Set(n);
  }
}

grpc::ServerUnaryReactor* ExpertPoolService::Forward(grpc::CallbackServerContext* ctx,
                                                     const moe::v1::ForwardRequest* req,
                                                     moe::v1::ForwardResponse* resp) {
  return FinishUnary(ctx, DoForward(*req, resp));
}

grpc::ServerBidiReactor<moe::v1::ForwardRequest, moe::v1::ForwardResponse>*
ExpertPoolService::ForwardStream(grpc::CallbackServerContext*) {
  return forward_streams_.Open();
}

grpc::ServerUnaryReactor* ExpertPoolService::GetFrameEndpoint(grpc::CallbackServerContext* ctx,
                                                              const moe::v1::FrameEndpointRequest*,
                                                              moe::v1::FrameEndpoint* resp) {
  *resp = frame_endpoint_;
  return FinishUnary(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* ExpertPoolService::Describe(grpc::CallbackServerContext* ctx,
                                                      const moe::v1::DescribeRequest*,
                                                      moe::v1::DescribeResponse* resp) {
  FillDescribe(*bank(), resp);
  return FinishUnary(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* ExpertPoolService::LoadExperts(grpc::CallbackServerContext* ctx,
                                                         const moe::v1::ChangeExpertsRequest* req,
                                                         moe::v1::DescribeResponse* resp) {
  return Change(ctx, *req, resp, /*load=*/true);
}

grpc::ServerUnaryReactor* ExpertPoolService::DropExperts(grpc::CallbackServerContext* ctx,
                                                         const moe::v1::ChangeExpertsRequest* req,
                                                         moe::v1::DescribeResponse* resp) {
  return Change(ctx, *req, resp, /*load=*/false);
}

grpc::ServerUnaryReactor* ExpertPoolService::Change(grpc::CallbackServerContext* ctx,
                                                    const moe::v1::ChangeExpertsRequest& req,
                                                    moe::v1::DescribeResponse* resp, bool load) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::StatusOr<std::vector<Key>> keys = ReadChange(req);
  if (!keys.ok()) {
    reactor->Finish(ToGrpcStatus(keys.status()));
    return reactor;
  }
  // On the worker thread: loading copies weights, dropping waits for calls in flight.
  changes_.Post([this, reactor, keys = *std::move(keys), resp, load] {
    reactor->Finish(ToGrpcStatus(load ? DoLoad(keys, resp) : DoDrop(keys, resp)));
  });
  return reactor;
}

absl::StatusOr<std::vector<ExpertPoolService::Key>> ExpertPoolService::ReadChange(
    const moe::v1::ChangeExpertsRequest& req) const {
  std::vector<Key> keys;
  for (int i = 0; i < req.experts_size(); ++i) {
    const moe::v1::HostedExperts& h = req.experts(i);
    const std::string field = absl::StrCat("experts[", i, "]");
    if (h.layer() < 0 || h.layer() >= config_.n_layers) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".layer: must be in [0, ", config_.n_layers, "), got ", h.layer()));
    }
    for (int e : h.experts()) {
      if (e < 0 || e >= config_.n_experts) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".experts: layer ", h.layer(), " expert ", e,
                         " is not an expert of the model (", config_.n_experts, " per layer)"));
      }
      keys.push_back({h.layer(), e});
    }
    for (int s : h.shared()) {
      if (s < 0 || s >= config_.n_shared) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".shared: layer ", h.layer(), " shared expert ", s,
                         " is not a shared expert of the model (", config_.n_shared, ")"));
      }
      keys.push_back({h.layer(), -1 - s});
    }
  }
  return keys;
}

bool ExpertPoolService::Hosts(const ExpertBank& bank, Key key) const {
  const auto [layer, e] = key;
  return bank.Hosts(layer, e < 0 ? -1 - e : e, e < 0, config_.granularity);
}

ExpertBank::HostFilter ExpertPoolService::Selects(const std::set<Key>& keys) {
  return [&keys](int l, int e, bool shared) { return keys.count({l, shared ? -1 - e : e}) > 0; };
}

void ExpertPoolService::Report(std::shared_ptr<const ExpertBank> next, absl::Time start,
                               moe::v1::DescribeResponse* resp) {
  UpdateHostedGauges(*next);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  change_seconds_->Observe(seconds);
  FillDescribe(*next, resp);
  resp->set_change_seconds(seconds);
}

absl::Status ExpertPoolService::DoLoad(const std::vector<Key>& keys,
                                       moe::v1::DescribeResponse* resp) {
  const absl::Time start = absl::Now();
  const std::set<Key> add(keys.begin(), keys.end());
  std::shared_ptr<const ExpertBank> old = bank();  // only this thread changes bank_
  if (options_.expert_slots > 0) {
    for (int l = 0; l < config_.n_layers; ++l) {
      int n = 0;
      for (int e = -config_.n_shared; e < config_.n_experts; ++e) {
        n += Hosts(*old, {l, e}) || add.count({l, e}) > 0;
      }
      if (n > options_.expert_slots) {
        return absl::ResourceExhaustedError(
            absl::StrCat("layer ", l, ": ", n, " experts would exceed pool ", options_.name, "'s ",
                         options_.expert_slots, " expert slots"));
      }
    }
  }
  int fresh = 0;
  for (const Key& k : add) fresh += !Hosts(*old, k);
  // Built beside the bank in use: Forward calls go on meanwhile.
  absl::StatusOr<ExpertBank> next =
      old->Changed(config_, expert_state_, Selects(add), [](int, int, bool) { return false; });
  if (!next.ok()) return next.status();
  auto swapped = std::make_shared<const ExpertBank>(*std::move(next));
  {
    absl::MutexLock lock(&mu_);
    bank_ = swapped;
  }
  loaded_->Increment(fresh);
  Report(swapped, start, resp);
  return absl::OkStatus();
}

absl::Status ExpertPoolService::DoDrop(const std::vector<Key>& keys,
                                       moe::v1::DescribeResponse* resp) {
  const absl::Time start = absl::Now();
  const std::set<Key> drop(keys.begin(), keys.end());
  std::shared_ptr<const ExpertBank> old = bank();
  int gone = 0;
  for (const Key& k : drop) gone += Hosts(*old, k);
  absl::StatusOr<ExpertBank> next = old->Changed(
      config_, expert_state_, [](int, int, bool) { return false; }, Selects(drop));
  if (!next.ok()) return next.status();
  auto swapped = std::make_shared<const ExpertBank>(*std::move(next));
  {
    absl::MutexLock lock(&mu_);
    bank_ = swapped;
  }
  // Calls that took the old bank still compute on it: wait until they are done, so that the
  // caller may stop the pool once this returns.
  const absl::Time deadline = absl::Now() + options_.drop_wait;
  while (old.use_count() > 1 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  if (old.use_count() > 1) {
    return absl::DeadlineExceededError(
        absl::StrCat("pool ", options_.name, ": calls still computing dropped experts after ",
                     absl::FormatDuration(options_.drop_wait)));
  }
  old.reset();
  dropped_->Increment(gone);
  Report(swapped, start, resp);
  return absl::OkStatus();
}

absl::Status ExpertPoolService::DoForward(const moe::v1::ForwardRequest& req,
                                          moe::v1::ForwardResponse* resp) {
  const absl::Time start = absl::Now();
  const int layer = req.layer();
  if (layer < 0 || layer >= config_.n_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer: must be in [0, ", config_.n_layers, "), got ", layer));
  }
  absl::StatusOr<torch::Tensor> hidden =
      DecodeTensor(req.hidden(), "hidden", {{-1, config_.d_model}, true});
  if (!hidden.ok()) return absl::InvalidArgumentError(hidden.status().message());
  const int64_t n = hidden->size(0);
  // One bank for the whole call, even if a change swaps it meanwhile.
  const std::shared_ptr<const ExpertBank> bank = this->bank();
  // Validate everything before computing anything.
  for (int w = 0; w < req.work_size(); ++w) {
    const moe::v1::ExpertWork& work = req.work(w);
    const std::string field = absl::StrCat("work[", w, "]");
    const int limit = work.shared() ? config_.n_shared : config_.n_routed();
    if (work.expert() < 0 || work.expert() >= limit) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".expert: ", work.expert(),
                                                     " out of range [0, ", limit, ")",
                                                     work.shared() ? " (shared)" : ""));
    }
    const int base = work.shared() ? work.expert() : work.expert() / config_.granularity;
    if (!bank->Hosts(layer, base, work.shared(), config_.granularity)) {
      return absl::FailedPreconditionError(
          absl::StrCat("layer ", layer, work.shared() ? " shared expert " : " expert ", base,
                       ": not hosted by pool ", options_.name));
    }
    for (int32_t r : work.rows()) {
      if (r < 0 || r >= n) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".rows: ", r, " out of range [0, ", n, ")"));
      }
    }
  }
  c10::InferenceMode guard;
  torch::Tensor x = hidden->to(bank->device());
  std::vector<torch::Tensor> outputs;
  outputs.reserve(req.work_size());
  for (const moe::v1::ExpertWork& work : req.work()) {
    const std::vector<int32_t> rows(work.rows().begin(), work.rows().end());
    outputs.push_back(bank->Run(layer, work.expert(), work.shared(), x, rows));
    const int key = work.shared() ? -1 - work.expert() : work.expert() / config_.granularity;
    computed_.at({layer, key})->Increment(static_cast<double>(rows.size()));
  }
  torch::Tensor out = outputs.empty()       ? torch::zeros({0, config_.d_model})
                      : outputs.size() == 1 ? outputs[0]
                                            : torch::cat(outputs, 0);
  EncodeTensor(out, resp->mutable_output());
  resp->set_pool(options_.name);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  resp->set_compute_seconds(seconds);
  forward_seconds_->Observe(seconds);
  return absl::OkStatus();
}

void ExpertPoolService::FillDescribe(const ExpertBank& bank,
                                     moe::v1::DescribeResponse* resp) const {
  resp->set_pool(options_.name);
  resp->set_device(options_.device);
  resp->set_model_id(ModelId(config_));
  resp->set_expert_slots(options_.expert_slots);
  for (int l = 0; l < config_.n_layers; ++l) {
    moe::v1::HostedExperts* h = resp->add_hosted();
    h->set_layer(l);
    for (int e = 0; e < config_.n_experts; ++e) {
      if (bank.Hosts(l, e, false, config_.granularity)) h->add_experts(e);
    }
    for (int s = 0; s < config_.n_shared; ++s) {
      if (bank.Hosts(l, s, true, config_.granularity)) h->add_shared(s);
    }
  }
}

}  // namespace moe
