#include "clients/moectl/remote.h"

#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "clients/moectl/placement_text.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "models/sampler.h"
#include "models/stop_text.h"
#include "models/tokenizer.h"
#include "moe/v1/expert.grpc.pb.h"
#include "moe/v1/orchestrator.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"
#include "services/common/deadline.h"
#include "services/common/status.h"

namespace moe::cli {
namespace {

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

moe::v1::GenerateRequest MakeRequest(const GenerateArgs& a) {
  moe::v1::GenerateRequest r;
  r.set_prompt(a.prompt);
  r.set_max_tokens(a.max_tokens);
  r.set_temperature(a.temperature);
  r.set_top_k(a.top_k);
  r.set_top_p(a.top_p);
  r.set_seed(a.seed);
  r.set_echo_prompt(a.echo_prompt);
  // Only what was asked, so that a server without these controls is not sent them.
  if (a.n != 1) r.set_n(a.n);
  for (const std::string& s : a.stop) r.add_stop(s);
  if (a.presence_penalty != 0) r.set_presence_penalty(a.presence_penalty);
  if (a.frequency_penalty != 0) r.set_frequency_penalty(a.frequency_penalty);
  if (a.repetition_penalty != 1) r.set_repetition_penalty(a.repetition_penalty);
  if (a.logprobs >= 0) r.set_logprobs(a.logprobs);
  return r;
}

// What answers at `target`, by the grpc.health.v1 status each service registers under its name:
// "the orchestrator", "the router", "an expert pool", or "" when none says.
std::string ServiceAt(const Endpoint& target) {
  auto stub = grpc::health::v1::Health::NewStub(target.Dial());
  const std::pair<const char*, const char*> services[] = {
      {moe::v1::Orchestrator::service_full_name(), "the orchestrator"},
      {moe::v1::Router::service_full_name(), "the router"},
      {moe::v1::ExpertPool::service_full_name(), "an expert pool"}};
  for (const auto& [full_name, what] : services) {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(5));
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(full_name);
    grpc::health::v1::HealthCheckResponse resp;
    if (stub->Check(&ctx, req, &resp).ok()) return what;
  }
  return "";
}

// A call's failure as moectl reports it. UNIMPLEMENTED means the target is another service than
// `command` needs: say which one answered and which one to give.
absl::Status CallFailed(const Endpoint& target, const grpc::Status& st, absl::string_view command,
                        absl::string_view needs) {
  if (st.error_code() != grpc::StatusCode::UNIMPLEMENTED) return FromGrpcStatus(st);
  const std::string there = ServiceAt(target);
  return absl::InvalidArgumentError(
      absl::StrCat("--target=", target.address, ": ",
                   there.empty() ? "does not serve this command" : absl::StrCat("is ", there),
                   "; moectl ", command, " needs ", needs, " (--target=HOST:PORT of ", needs, ")"));
}

constexpr absl::string_view kOrchestrator = "the orchestrator";
constexpr absl::string_view kRouter = "the router";

std::vector<std::pair<std::string, float>> TopOf(const moe::v1::TokenLogprobs& lp) {
  std::vector<std::pair<std::string, float>> top;
  for (const auto& a : lp.top()) top.emplace_back(a.token(), a.logprob());
  return top;
}

}  // namespace

absl::Status GenerateRemote(const Endpoint& target, const GenerateArgs& args, Printer& printer) {
  auto stub = moe::v1::Orchestrator::NewStub(target.Dial());
  if (args.routing) {
    // Micro-expert ids print as expert.micro, which needs m.
    grpc::ClientContext info_ctx;
    SetTimeout(info_ctx, absl::Seconds(10));
    moe::v1::ModelInfo info;
    grpc::Status st = stub->GetModelInfo(&info_ctx, moe::v1::GetModelInfoRequest(), &info);
    if (!st.ok()) return CallFailed(target, st, "generate", kOrchestrator);
    printer.SetGranularity(std::max(1, info.granularity()));
  }
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(args.deadline_s));
  moe::v1::GenerateRequest req = MakeRequest(args);
  if (!args.routing && args.n == 1) std::fputs(args.prompt.c_str(), stdout);
  auto reader = stub->Generate(&ctx, req);
  moe::v1::GenerateResponse msg;
  std::string finish;
  uint64_t seed = args.seed;
  const absl::Time start = absl::Now();
  if (args.n > 1) {
    // The completions' tokens interleave on the stream: each is printed whole at the end.
    std::vector<std::string> texts(args.n), finishes(args.n);
    while (reader->Read(&msg)) {
      if (msg.is_prompt() || msg.index() < 0 || msg.index() >= args.n) continue;
      texts[msg.index()] += msg.text();
      if (!msg.finish_reason().empty()) finishes[msg.index()] = msg.finish_reason();
    }
    grpc::Status st = reader->Finish();
    if (!st.ok()) return CallFailed(target, st, "generate", kOrchestrator);
    for (int i = 0; i < args.n; ++i) {
      std::printf("[%d] %s%s\n", i, args.prompt.c_str(), texts[i].c_str());
      std::fprintf(stderr, "[%d: %s, seed %llu]\n", i, finishes[i].c_str(),
                   static_cast<unsigned long long>(args.seed + i));
    }
    return absl::OkStatus();
  }
  while (reader->Read(&msg)) {
    RoutingRow row;
    row.position = msg.position();
    row.is_prompt = msg.is_prompt();
    row.text = msg.text();
    for (const auto& l : msg.routing()) {
      row.layers.emplace_back();
      for (const auto& e : l.experts()) row.layers.back().push_back({e.id(), e.weight(), e.pool()});
    }
    if (msg.has_logprobs()) {
      printer.Logprobs(msg.logprobs().token(), msg.logprobs().logprob(), TopOf(msg.logprobs()));
    }
    printer.Token(row, msg.is_prompt() ? "" : msg.text());
    if (!msg.finish_reason().empty()) finish = msg.finish_reason();
    if (msg.seed() != 0) seed = msg.seed();
  }
  grpc::Status st = reader->Finish();
  if (!st.ok()) {
    std::printf("\n");
    return CallFailed(target, st, "generate", kOrchestrator);
  }
  printer.Finish(finish, seed, absl::ToDoubleSeconds(absl::Now() - start));
  return absl::OkStatus();
}

absl::Status CompleteRemote(const Endpoint& target, const GenerateArgs& args) {
  auto stub = moe::v1::Orchestrator::NewStub(target.Dial());
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(args.deadline_s));
  moe::v1::CompleteResponse resp;
  grpc::Status st = stub->Complete(&ctx, MakeRequest(args), &resp);
  if (!st.ok()) return CallFailed(target, st, "complete", kOrchestrator);
  std::printf("%s\n", ToJson(resp).c_str());
  return absl::OkStatus();
}

absl::Status WaitHealthy(const Endpoint& target, double timeout_s) {
  // A fresh channel (with its own subchannel) for each attempt until one connects: a channel
  // whose first attempts found no listener can stay stuck in its connect backoff (with TLS for
  // up to gRPC's 20 s connect timeout) long after the server is up.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  const absl::Time deadline = absl::Now() + absl::Seconds(timeout_s);
  std::string last = "no answer";
  std::unique_ptr<grpc::health::v1::Health::Stub> stub;
  do {
    if (stub == nullptr) stub = grpc::health::v1::Health::NewStub(target.Dial(args));
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(1));
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status st = stub->Check(&ctx, req, &resp);
    if (st.ok() && resp.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      return absl::OkStatus();
    }
    if (!st.ok()) stub.reset();
    last = st.ok() ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status())
                   : st.error_message();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  } while (absl::Now() < deadline);
  return absl::DeadlineExceededError(
      absl::StrCat(target.address, ": not SERVING after ", timeout_s, " s (last: ", last, ")"));
}

bool Reachable(const Endpoint& target) {
  auto stub = grpc::health::v1::Health::NewStub(target.Dial());
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(3));
  grpc::health::v1::HealthCheckResponse resp;
  return stub->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp).ok();
}

absl::StatusOr<std::string> ModelInfoJson(const Endpoint& target) {
  auto stub = moe::v1::Orchestrator::NewStub(target.Dial());
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(10));
  moe::v1::ModelInfo info;
  grpc::Status st = stub->GetModelInfo(&ctx, moe::v1::GetModelInfoRequest(), &info);
  if (!st.ok()) return CallFailed(target, st, "info", kOrchestrator);
  info.clear_expert_profiles_json();  // large; the viewer shows it
  return ToJson(info);
}

absl::StatusOr<std::string> PlacementJson(const Endpoint& target) {
  auto stub = moe::v1::Orchestrator::NewStub(target.Dial());
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(10));
  moe::v1::Placement placement;
  grpc::Status st = stub->GetPlacement(&ctx, moe::v1::GetPlacementRequest(), &placement);
  if (st.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    // The router owns the placement and answers the same request.
    auto router = moe::v1::Router::NewStub(target.Dial());
    grpc::ClientContext rctx;
    SetTimeout(rctx, absl::Seconds(10));
    st = router->GetPlacement(&rctx, moe::v1::GetPlacementRequest(), &placement);
  }
  if (!st.ok()) return CallFailed(target, st, "placement", "the orchestrator or the router");
  return ToJson(placement);
}

absl::StatusOr<std::string> RebalanceNow(const Endpoint& router, double deadline_s) {
  auto stub = moe::v1::Router::NewStub(router.Dial());
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(deadline_s));
  moe::v1::RebalanceResponse resp;
  grpc::Status st = stub->Rebalance(&ctx, moe::v1::RebalanceRequest(), &resp);
  if (!st.ok()) return CallFailed(router, st, "rebalance", kRouter);
  return FormatRebalance(resp);
}

absl::StatusOr<std::string> DrainPool(const Endpoint& router, const std::string& pool,
                                      double deadline_s) {
  auto stub = moe::v1::Router::NewStub(router.Dial());
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(deadline_s));
  moe::v1::DrainPoolRequest req;
  req.set_pool(pool);
  moe::v1::Placement after;
  grpc::Status st = stub->DrainPool(&ctx, req, &after);
  if (!st.ok()) return CallFailed(router, st, "drain", kRouter);
  return FormatPlacement(after);
}

absl::StatusOr<std::string> Policy(const Endpoint& target, int top_k, double noise_std,
                                   double capacity_factor) {
  auto stub = moe::v1::Router::NewStub(target.Dial());
  moe::v1::RoutingPolicy policy;
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(10));
    grpc::Status st = stub->GetPolicy(&ctx, moe::v1::GetPolicyRequest(), &policy);
    if (!st.ok()) return CallFailed(target, st, "policy", kRouter);
  }
  if (top_k <= 0 && noise_std < 0 && capacity_factor < 0) return ToJson(policy);
  if (top_k > 0) policy.set_top_k(top_k);
  if (noise_std >= 0) policy.set_noise_std(static_cast<float>(noise_std));
  if (capacity_factor >= 0) policy.set_capacity_factor(static_cast<float>(capacity_factor));
  moe::v1::SetPolicyRequest req;
  *req.mutable_policy() = policy;
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(10));
  moe::v1::RoutingPolicy now;
  grpc::Status st = stub->SetPolicy(&ctx, req, &now);
  if (!st.ok()) return CallFailed(target, st, "policy", kRouter);
  return ToJson(now);
}

}  // namespace moe::cli
