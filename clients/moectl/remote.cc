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
#include "models/embedded.h"
#include "models/stop_text.h"
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

void Printer::Token(const RoutingRow& row, const std::string& text_chunk) {
  if (!row.is_prompt) ++generated_;
  if (routing_) {
    std::printf("%s\n", FormatRoutingRow(row, granularity_, /*show_pools=*/true).c_str());
    if (!row.is_prompt) text_ += text_chunk;
  } else {
    std::fputs(text_chunk.c_str(), stdout);
  }
  std::fflush(stdout);
}

void Printer::Logprobs(const std::string& token, float logprob,
                       const std::vector<std::pair<std::string, float>>& top) {
  absl::StrAppend(&logprobs_, absl::StrFormat("%-16s %9.4f ", absl::CEscape(token), logprob));
  for (const auto& [t, lp] : top) {
    absl::StrAppend(&logprobs_, absl::StrFormat(" %s=%.4f", absl::CEscape(t), lp));
  }
  logprobs_ += "\n";
}

void Printer::Finish(const std::string& finish_reason, uint64_t seed, double seconds) {
  if (routing_) {
    std::printf("text: %s\n", text_.c_str());
  } else {
    std::printf("\n");
  }
  if (!logprobs_.empty()) {
    std::printf("%-16s %9s  top alternatives\n%s", "token", "logprob", logprobs_.c_str());
  }
  text_.clear();
  logprobs_.clear();
  std::fprintf(stderr, "[%d tokens, %s, seed %llu, %.1f tokens/s]\n", generated_,
               finish_reason.c_str(), static_cast<unsigned long long>(seed),
               seconds > 0 ? generated_ / seconds : 0.0);
}

absl::Status GenerateEmbedded(const ModelSource& source, const GenerateArgs& args, int threads,
                              Printer& printer) {
  SetIntraOpThreads(threads);
  EngineOptions options;
  options.max_batch = 1;
  absl::StatusOr<std::unique_ptr<EmbeddedModel>> model = EmbeddedModel::Load(source, options);
  if (!model.ok()) return model.status();
  const Tokenizer& tok = (*model)->tokenizer();
  printer.SetGranularity((*model)->config().granularity);
  GenerateParams p;
  p.prompt = tok.Encode(args.prompt);
  p.max_new_tokens = args.max_tokens;
  p.sampling.temperature = args.temperature;
  p.sampling.top_k = args.top_k;
  p.sampling.top_p = args.top_p;
  p.sampling.presence_penalty = args.presence_penalty;
  p.sampling.frequency_penalty = args.frequency_penalty;
  p.sampling.repetition_penalty = args.repetition_penalty;
  p.sampling.logprobs = args.logprobs;
  p.echo_prompt = args.echo_prompt;
  for (const std::string& s : args.stop) {
    if (s.empty()) return absl::InvalidArgumentError("stop: stop sequences must not be empty");
  }
  for (int i = 0; i < args.n; ++i) {
    GenerateParams params = p;
    params.sampling.seed = args.seed + static_cast<uint64_t>(i);  // as the orchestrator does
    if (args.n > 1) std::printf("[%d] ", i);
    if (!args.routing) std::fputs(args.prompt.c_str(), stdout);
    StreamDecoder decoder(&tok);
    StopText stop(args.stop);
    std::string finish;
    const absl::Time start = absl::Now();
    Engine& engine = (*model)->engine();
    absl::Status s = (*model)->Generate(std::move(params), [&](const TokenOutput& t) {
      if (finish == "stop") return;  // a stop sequence ended it; the engine stops next step
      RoutingRow row;
      row.position = t.position;
      row.is_prompt = t.is_prompt;
      row.text = SanitizeUtf8(tok.TokenBytes(t.token_id));
      for (const LayerRoute& r : t.routing) {
        row.layers.emplace_back();
        for (size_t k = 0; k < r.ids.size(); ++k)
          row.layers.back().push_back({r.ids[k], r.weights[k], ""});
      }
      std::string chunk;
      if (!t.is_prompt && t.token_id != (*model)->config().eos_id) chunk = decoder.Next(t.token_id);
      if (t.last) chunk += decoder.Finish();
      if (!t.is_prompt) {
        StopText::Step step = stop.Add(chunk);
        chunk = std::move(step.text);
        if (step.stopped) {
          finish = "stop";
          engine.Cancel(t.request_id);
        } else if (t.last) {
          chunk += stop.Flush();
        }
        if (args.logprobs >= 0) {
          std::vector<std::pair<std::string, float>> top;
          for (const LogprobEntry& e : t.logprobs.top) {
            top.emplace_back(SanitizeUtf8(tok.TokenBytes(e.token_id)), e.logprob);
          }
          printer.Logprobs(row.text, t.logprobs.logprob, top);
        }
      }
      printer.Token(row, chunk);
      if (t.last && finish.empty()) finish = t.finish_reason;
    });
    if (!s.ok() && !(finish == "stop" && s.code() == absl::StatusCode::kCancelled)) return s;
    printer.Finish(finish, args.seed + static_cast<uint64_t>(i),
                   absl::ToDoubleSeconds(absl::Now() - start));
  }
  return absl::OkStatus();
}

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
