// Distributed vs embedded, measured in one run on the same model: single-stream decode
// ms/token, and generated tokens/s with 1, 8 and 32 concurrent streams. The distributed side is
// real processes on loopback (router, 2 pools, orchestrator; 1 intra-op thread each).
//   cluster_bench --model=models/brown-moe --tokens=64 --repeats=3
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/time/clock.h"
#include "models/embedded.h"
#include "moe/v1/orchestrator.grpc.pb.h"
#include "tests/integration/cluster.h"

ABSL_FLAG(std::string, model, "models/brown-moe", "checkpoint");
ABSL_FLAG(int, tokens, 64, "tokens generated per stream");
ABSL_FLAG(int, repeats, 3, "runs per measurement (best reported)");
ABSL_FLAG(std::string, streams, "1,8,32", "concurrent streams");
ABSL_FLAG(int, lanes, 2, "the orchestrator's --lanes");
ABSL_FLAG(bool, compare_unary, false,
          "also run a second cluster whose orchestrator makes unary internal calls "
          "(--internal_streams=false), interleaved with the first in the same run");
ABSL_FLAG(bool, embedded, true,
          "also run the embedded model (false: distributed only, e.g. to profile)");

namespace {

constexpr char kPrompt[] = "The jury said it did find that";

// Runs n concurrent Generate streams; returns {wall seconds, tokens, mean ms between tokens}.
struct Run {
  double seconds = 0;
  int64_t tokens = 0;
  double ms_per_token = 0;  // single stream: time between first and last token / (n - 1)
};

Run Remote(moe::v1::Orchestrator::Stub& stub, int n, int tokens) {
  Run r;
  std::vector<std::thread> threads;
  std::vector<int64_t> counts(n, 0);
  std::vector<double> itl(n, 0);
  const absl::Time start = absl::Now();
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      grpc::ClientContext ctx;
      moe::v1::GenerateRequest req;
      req.set_prompt(kPrompt);
      req.set_max_tokens(tokens);
      req.set_temperature(0);
      req.set_seed(i + 1);
      auto reader = stub.Generate(&ctx, req);
      moe::v1::GenerateResponse msg;
      absl::Time first, last;
      while (reader->Read(&msg)) {
        last = absl::Now();
        if (counts[i]++ == 0) first = last;
      }
      if (!reader->Finish().ok()) std::fprintf(stderr, "stream %d failed\n", i);
      if (counts[i] > 1) itl[i] = absl::ToDoubleMilliseconds(last - first) / (counts[i] - 1);
    });
  }
  for (auto& t : threads) t.join();
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  for (int i = 0; i < n; ++i) r.tokens += counts[i], r.ms_per_token += itl[i] / n;
  return r;
}

Run Local(moe::EmbeddedModel& m, int n, int tokens) {
  Run r;
  std::vector<absl::Time> first(n), last(n);
  std::vector<int64_t> counts(n, 0);
  for (int i = 0; i < n; ++i) {
    moe::GenerateParams p;
    p.prompt = m.tokenizer().Encode(kPrompt);
    p.max_new_tokens = tokens;
    p.sampling.temperature = 0;
    p.sampling.seed = i + 1;
    moe::GenerateCallbacks cb;
    cb.on_token = [&, i](const moe::TokenOutput&) {
      last[i] = absl::Now();
      if (counts[i]++ == 0) first[i] = last[i];
    };
    cb.on_done = [](const absl::Status&) {};
    (void)m.engine().Submit(p, cb);
  }
  const absl::Time start = absl::Now();
  m.engine().RunUntilIdle();
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  for (int i = 0; i < n; ++i) {
    r.tokens += counts[i];
    r.ms_per_token += absl::ToDoubleMilliseconds(last[i] - first[i]) / (counts[i] - 1) / n;
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int tokens = absl::GetFlag(FLAGS_tokens);
  const int reps = absl::GetFlag(FLAGS_repeats);
  moe::SetIntraOpThreads(1);
  moe::ModelSource source;
  source.model_dir = absl::GetFlag(FLAGS_model);
  moe::EngineOptions options;
  options.max_batch = 32;
  auto local = moe::EmbeddedModel::Load(source, options);
  if (!local.ok()) return std::fprintf(stderr, "%s\n", local.status().ToString().c_str()), 1;

  // clusters[0]: the default orchestrator (streams); clusters[1]: unary internal calls.
  std::vector<std::unique_ptr<moe::testing::Cluster>> clusters;
  std::vector<std::unique_ptr<moe::v1::Orchestrator::Stub>> stubs;
  for (bool unary : {false, true}) {
    if (unary && !absl::GetFlag(FLAGS_compare_unary)) break;
    moe::testing::ClusterOptions o = moe::testing::TwoPoolOptions(source.model_dir);
    o.orchestrator_args = {absl::StrCat("--lanes=", absl::GetFlag(FLAGS_lanes)),
                           absl::StrCat("--internal_streams=", unary ? "false" : "true")};
    clusters.push_back(std::make_unique<moe::testing::Cluster>(o));
    if (absl::Status s = clusters.back()->Start(); !s.ok()) {
      return std::fprintf(stderr, "%s\n", s.ToString().c_str()), 1;
    }
    stubs.push_back(moe::v1::Orchestrator::NewStub(grpc::CreateChannel(
        clusters.back()->address("orchestrator"), grpc::InsecureChannelCredentials())));
    Remote(*stubs.back(), 1, 8);  // warm-up
  }
  Local(**local, 1, 8);

  std::string list = absl::GetFlag(FLAGS_streams);
  for (size_t pos = 0; pos < list.size();) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    const int n = std::stoi(list.substr(pos, comma - pos));
    pos = comma + 1;
    Run best_remote, best_unary, best_local;
    best_remote.seconds = best_unary.seconds = best_local.seconds = 1e9;
    for (int r = 0; r < reps; ++r) {
      Run a = Remote(*stubs[0], n, tokens);
      if (a.seconds < best_remote.seconds) best_remote = a;
      if (stubs.size() > 1) {
        Run u = Remote(*stubs[1], n, tokens);
        if (u.seconds < best_unary.seconds) best_unary = u;
      }
      if (!absl::GetFlag(FLAGS_embedded)) continue;
      Run b = Local(**local, n, tokens);
      if (b.seconds < best_local.seconds) best_local = b;
    }
    std::printf(
        "{\"streams\": %d, \"embedded_tokens_per_s\": %.0f, \"distributed_tokens_per_s\": "
        "%.0f, \"ratio\": %.2f, \"embedded_ms_per_token\": %.3f, "
        "\"distributed_ms_per_token\": %.3f",
        n, best_local.tokens / best_local.seconds, best_remote.tokens / best_remote.seconds,
        (best_remote.tokens / best_remote.seconds) / (best_local.tokens / best_local.seconds),
        best_local.ms_per_token, best_remote.ms_per_token);
    if (stubs.size() > 1) {
      std::printf(
          ", \"unary_tokens_per_s\": %.0f, \"unary_ratio\": %.2f, \"unary_ms_per_token\": %.3f",
          best_unary.tokens / best_unary.seconds,
          (best_unary.tokens / best_unary.seconds) / (best_local.tokens / best_local.seconds),
          best_unary.ms_per_token);
    }
    std::printf("}\n");
    std::fflush(stdout);
  }
  return 0;
}
