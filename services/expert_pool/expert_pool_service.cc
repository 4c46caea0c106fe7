#include "services/expert_pool/expert_pool_service.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/common/status.h"
#include "services/common/tensor_codec.h"

namespace moe {

ExpertPoolService::ExpertPoolService(const ModelConfig& config, PoolSpec pool, ExpertBank bank,
                                     std::string device, prometheus::Registry& registry)
    : config_(config), pool_(std::move(pool)), bank_(std::move(bank)), device_(std::move(device)) {
  auto& computed = prometheus::BuildCounter()
                       .Name("moe_expert_tokens_computed_total")
                       .Help("Tokens each hosted expert computed (expert sN = shared expert N)")
                       .Register(registry);
  for (const auto& [l, e] : pool_.routed) {
    computed_[{l, e}] = &computed.Add(
        {{"layer", absl::StrCat(l)}, {"expert", absl::StrCat(e)}, {"pool", pool_.name}});
  }
  for (const auto& [l, s] : pool_.shared) {
    computed_[{l, -1 - s}] = &computed.Add(
        {{"layer", absl::StrCat(l)}, {"expert", absl::StrCat("s", s)}, {"pool", pool_.name}});
  }
  forward_seconds_ = &prometheus::BuildHistogram()
                          .Name("moe_forward_duration_seconds")
                          .Help("Forward calls and ForwardStream messages, server side")
                          .Register(registry)
                          .Add({{"pool", pool_.name}}, prometheus::Histogram::BucketBoundaries{
                                                           5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3,
                                                           5e-3, 1e-2, 2.5e-2, 0.1, 1});
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

grpc::ServerUnaryReactor* ExpertPoolService::Describe(grpc::CallbackServerContext* ctx,
                                                      const moe::v1::DescribeRequest*,
                                                      moe::v1::DescribeResponse* resp) {
  return FinishUnary(ctx, DoDescribe(resp));
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
    if (!pool_.Hosts(layer, base, work.shared())) {
      return absl::FailedPreconditionError(
          absl::StrCat("layer ", layer, work.shared() ? " shared expert " : " expert ", base,
                       ": not hosted by pool ", pool_.name));
    }
    for (int32_t r : work.rows()) {
      if (r < 0 || r >= n) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".rows: ", r, " out of range [0, ", n, ")"));
      }
    }
  }
  c10::InferenceMode guard;
  torch::Tensor x = hidden->to(bank_.device());
  std::vector<torch::Tensor> outputs;
  outputs.reserve(req.work_size());
  for (const moe::v1::ExpertWork& work : req.work()) {
    const std::vector<int32_t> rows(work.rows().begin(), work.rows().end());
    outputs.push_back(bank_.Run(layer, work.expert(), work.shared(), x, rows));
    const int key = work.shared() ? -1 - work.expert() : work.expert() / config_.granularity;
    computed_.at({layer, key})->Increment(static_cast<double>(rows.size()));
  }
  torch::Tensor out = outputs.empty()       ? torch::zeros({0, config_.d_model})
                      : outputs.size() == 1 ? outputs[0]
                                            : torch::cat(outputs, 0);
  EncodeTensor(out, resp->mutable_output());
  resp->set_pool(pool_.name);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  resp->set_compute_seconds(seconds);
  forward_seconds_->Observe(seconds);
  return absl::OkStatus();
}

absl::Status ExpertPoolService::DoDescribe(moe::v1::DescribeResponse* resp) {
  resp->set_pool(pool_.name);
  resp->set_device(device_);
  resp->set_model_id(ModelId(config_));
  AddHostedExperts(pool_, config_, resp->mutable_hosted());
  return absl::OkStatus();
}

}  // namespace moe
