// moectl: the command-line client.
//   moectl generate --target=HOST:PORT "prompt"     stream text from a cluster
//   moectl generate --embedded [--model=DIR] "prompt"  run the model in this process
//   moectl complete --target=HOST:PORT "prompt"     one answer
//   moectl info|placement --target=HOST:PORT        model facts / where experts live
//   moectl policy --target=ROUTER [--route_top_k=N --noise_std=X --capacity_factor=X]
//   moectl health --target=HOST:PORT [--timeout_s=N]   exit 0 once SERVING
#include <cstdio>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "clients/moectl/embedded.h"
#include "clients/moectl/remote.h"
#include "clients/moectl/routing_table.h"
#include "models/config.h"
#include "models/sampler.h"
#include "models/usage.h"
#include "services/common/tls.h"

ABSL_FLAG(std::string, target, "",
          "orchestrator address HOST:PORT (the router's for policy, rebalance and drain)");
ABSL_FLAG(bool, embedded, false, "run the model in this process instead of a cluster");
ABSL_FLAG(std::string, model, "models/brown-moe", "embedded: checkpoint directory");
ABSL_FLAG(std::string, random_init, "", "embedded: config JSON to initialise randomly instead");
ABSL_FLAG(uint64_t, init_seed, 0, "embedded: seed of --random_init");
ABSL_FLAG(std::string, tokenizer, "models/brown-moe/tokenizer.model",
          "embedded --random_init: tokenizer to use when its vocabulary size matches");
ABSL_FLAG(int, max_tokens, 64, "tokens to generate, in [1, 1024]");
ABSL_FLAG(double, temperature, 0.8, "sampling temperature; 0 = greedy");
ABSL_FLAG(int, top_k, 0, "sample among the k most likely tokens; 0 = off");
ABSL_FLAG(double, top_p, 1.0, "nucleus sampling mass in (0, 1]");
ABSL_FLAG(int64_t, seed, -1, "sampling seed; -1 = random (printed)");
ABSL_FLAG(int, n, 1, "completions of the prompt, in [1, 16]; completion i samples with seed + i");
ABSL_FLAG(std::vector<std::string>, stop, {},
          "stop sequences, comma-separated, C escapes allowed (\\n, \\x2c for a comma): the text "
          "ends before the first that appears");
ABSL_FLAG(double, presence_penalty, 0, "in [-2, 2]: lowers tokens already generated (OpenAI's)");
ABSL_FLAG(double, frequency_penalty, 0,
          "in [-2, 2]: lowers tokens by how often they were generated (OpenAI's)");
ABSL_FLAG(double, repetition_penalty, 1,
          "in (0, 2]: divides the positive logits of prompt and generated tokens, multiplies the "
          "negative ones (Hugging Face's, vLLM's); 1 = off");
ABSL_FLAG(int, logprobs, -1,
          "print each token's log-probability and this many most likely alternatives, in "
          "[0, 20]; -1 = off");
ABSL_FLAG(bool, routing, false, "print the routing table: token x layer -> experts, weights");
ABSL_FLAG(bool, echo_prompt, true, "with --routing: include the prompt tokens");
ABSL_FLAG(double, deadline_s, 300, "deadline of remote calls");
ABSL_FLAG(double, timeout_s, 30, "health: how long to wait for SERVING");
ABSL_FLAG(int, route_top_k, 0, "policy: new top-k (0 = keep)");
ABSL_FLAG(double, noise_std, -1, "policy: new noise std (-1 = keep)");
ABSL_FLAG(double, capacity_factor, -1, "policy: new capacity factor (-1 = keep, 0 = dropless)");
ABSL_FLAG(int, threads, 1, "embedded: intra-op threads");

namespace {

// `tls`: the flags' TLS settings, when a service was called; an unreachable service may be one
// that speaks mutual TLS to this plaintext client, and the message then says what to give.
// Only a failure of this client's own connection gets the hint: a service that answered
// UNAVAILABLE about its own backends ("router: ... no healthy pool") was reached.
bool ConnectionFailed(const absl::Status& s) {
  for (absl::string_view transport :
       {"Socket closed", "failed to connect", "Failed to connect", "Connection reset",
        "Connection refused", "handshake", "connections to all backends failing", "Broken pipe"}) {
    if (absl::StrContains(s.message(), transport)) return true;
  }
  return false;
}

int Fail(const absl::Status& s, const moe::TlsConfig* tls = nullptr,
         const moe::Endpoint* target = nullptr) {
  const char* hint = "";
  // A target that answers a health check was reached: the failure is about its own backends
  // (an orchestrator whose router is down), and the hint would send the user the wrong way.
  if (tls != nullptr && s.code() == absl::StatusCode::kUnavailable && ConnectionFailed(s) &&
      (target == nullptr || !moe::cli::Reachable(*target))) {
    // A TLS server closes the connection of a client it refuses; gRPC says only "Socket closed".
    hint = tls->enabled() ? " (mutual TLS: is --tls_cert signed by the CA the cluster trusts, and "
                            "--tls_ca the CA of the cluster's certificates?)"
                          : " (if the cluster runs mutual TLS, give --tls_cert, --tls_key and "
                            "--tls_ca)";
  }
  std::fprintf(stderr, "moectl: %s%s\n", s.ToString().c_str(), hint);
  return 1;
}

moe::cli::GenerateArgs ArgsFromFlags(const std::string& prompt) {
  moe::cli::GenerateArgs a;
  a.prompt = prompt;
  a.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  a.temperature = static_cast<float>(absl::GetFlag(FLAGS_temperature));
  a.top_k = absl::GetFlag(FLAGS_top_k);
  a.top_p = static_cast<float>(absl::GetFlag(FLAGS_top_p));
  const int64_t seed = absl::GetFlag(FLAGS_seed);
  a.seed = seed >= 0 ? static_cast<uint64_t>(seed) : std::random_device{}();
  a.n = absl::GetFlag(FLAGS_n);
  for (const std::string& s : absl::GetFlag(FLAGS_stop)) {
    std::string unescaped;
    a.stop.push_back(absl::CUnescape(s, &unescaped) ? unescaped : s);
  }
  a.presence_penalty = static_cast<float>(absl::GetFlag(FLAGS_presence_penalty));
  a.frequency_penalty = static_cast<float>(absl::GetFlag(FLAGS_frequency_penalty));
  a.repetition_penalty = static_cast<float>(absl::GetFlag(FLAGS_repetition_penalty));
  a.logprobs = absl::GetFlag(FLAGS_logprobs);
  a.routing = absl::GetFlag(FLAGS_routing);
  a.echo_prompt = a.routing && absl::GetFlag(FLAGS_echo_prompt);
  a.deadline_s = absl::GetFlag(FLAGS_deadline_s);
  return a;
}

// `argv`: moectl's own arguments, for moectl-embedded (--embedded).
int Generate(const moe::Endpoint& target, const moe::TlsConfig& tls, const std::string& prompt,
             bool complete, char** argv) {
  moe::cli::GenerateArgs args = ArgsFromFlags(prompt);
  if (args.n != 1 && args.routing) {
    return Fail(absl::InvalidArgumentError("--routing: only with --n=1"));
  }
  if (absl::GetFlag(FLAGS_embedded)) {
    // The orchestrator's validator checks these for a cluster; the embedded run checks them here.
    moe::SamplingParams check;
    check.temperature = args.temperature;
    check.top_k = args.top_k;
    check.top_p = args.top_p;
    check.presence_penalty = args.presence_penalty;
    check.frequency_penalty = args.frequency_penalty;
    check.repetition_penalty = args.repetition_penalty;
    check.logprobs = args.logprobs;
    if (absl::Status s = moe::ValidateSampling(check); !s.ok()) return Fail(s);
    if (args.n < 1 || args.n > 16) {
      return Fail(absl::InvalidArgumentError(absl::StrCat("n: must be in [1, 16], got ", args.n)));
    }
  }
  moe::cli::Printer printer(args.routing);
  absl::Status s;
  if (absl::GetFlag(FLAGS_embedded)) {
    if (complete) return Fail(absl::InvalidArgumentError("complete: needs --target"));
    moe::ModelSource source;
    source.model_dir = absl::GetFlag(FLAGS_model);
    source.random_init_config = absl::GetFlag(FLAGS_random_init);
    source.seed = absl::GetFlag(FLAGS_init_seed);
    if (!source.random_init_config.empty()) source.tokenizer = absl::GetFlag(FLAGS_tokenizer);
#ifdef MOECTL_IN_PROCESS_MODEL
    static_cast<void>(argv);  // this is moectl-embedded: the model is here
    s = moe::cli::GenerateEmbedded(source, args, absl::GetFlag(FLAGS_threads), printer);
#else
    // The model is in moectl-embedded (clients/moectl/embedded.h), run with these arguments.
    s = moe::cli::ExecEmbedded(argv);
#endif
  } else if (!target.address.empty()) {
    s = complete ? moe::cli::CompleteRemote(target, args)
                 : moe::cli::GenerateRemote(target, args, printer);
  } else {
    s = absl::InvalidArgumentError("give --target=HOST:PORT (a cluster) or --embedded");
  }
  return s.ok() ? 0 : Fail(s, &tls, &target);
}

}  // namespace

int main(int argc, char** argv) {
  moe::InitUsage(
      "moectl generate|complete|info|placement|policy|rebalance|drain|health [flags] "
      "[prompt|pool]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const std::string cmd = args.size() > 1 ? args[1] : "";
  std::vector<std::string> rest(args.begin() + std::min<size_t>(2, args.size()), args.end());
  const std::string prompt = absl::StrJoin(rest, " ");
  absl::StatusOr<moe::TlsConfig> tls = moe::TlsFromFlags();
  if (!tls.ok()) return Fail(tls.status());
  const moe::Endpoint target(absl::GetFlag(FLAGS_target), moe::ChannelCredentials(*tls));
  auto need_target = [&]() {
    if (target.address.empty())
      std::fprintf(stderr, "moectl %s: --target=HOST:PORT is required\n", cmd.c_str());
    return !target.address.empty();
  };
  if (cmd == "generate" || cmd == "complete") {
    if (prompt.empty()) {
      std::fprintf(stderr, "moectl %s: give a prompt, e.g. moectl %s --embedded \"The jury\"\n",
                   cmd.c_str(), cmd.c_str());
      return 2;
    }
    return Generate(target, *tls, prompt, cmd == "complete", argv);
  }
  if (cmd == "health") {
    if (!need_target()) return 2;
    absl::Status s = moe::cli::WaitHealthy(target, absl::GetFlag(FLAGS_timeout_s));
    if (!s.ok()) return Fail(s, &*tls, &target);
    std::printf("%s: SERVING\n", target.address.c_str());
    return 0;
  }
  if (cmd == "info" || cmd == "placement") {
    if (!need_target()) return 2;
    absl::StatusOr<std::string> out =
        cmd == "info" ? moe::cli::ModelInfoJson(target) : moe::cli::PlacementJson(target);
    if (!out.ok()) return Fail(out.status(), &*tls, &target);
    std::printf("%s\n", out->c_str());
    return 0;
  }
  if (cmd == "rebalance" || cmd == "drain") {
    if (!need_target()) return 2;
    if (cmd == "drain" && prompt.empty()) {
      std::fprintf(stderr,
                   "moectl drain: give the pool, e.g. moectl drain --target=ROUTER pool-b\n");
      return 2;
    }
    absl::StatusOr<std::string> out =
        cmd == "rebalance" ? moe::cli::RebalanceNow(target, absl::GetFlag(FLAGS_deadline_s))
                           : moe::cli::DrainPool(target, prompt, absl::GetFlag(FLAGS_deadline_s));
    if (!out.ok()) return Fail(out.status(), &*tls, &target);
    std::printf("%s", out->c_str());
    return 0;
  }
  if (cmd == "policy") {
    if (!need_target()) return 2;
    absl::StatusOr<std::string> out =
        moe::cli::Policy(target, absl::GetFlag(FLAGS_route_top_k), absl::GetFlag(FLAGS_noise_std),
                         absl::GetFlag(FLAGS_capacity_factor));
    if (!out.ok()) return Fail(out.status(), &*tls, &target);
    std::printf("%s\n", out->c_str());
    return 0;
  }
  std::fprintf(stderr,
               "usage: moectl generate|complete|info|placement|policy|rebalance|drain|health "
               "[flags] [prompt|pool] (see --help)\n");
  return 2;
}
