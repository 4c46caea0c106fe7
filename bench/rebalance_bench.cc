// The rebalancer against a skewed placement, in one run on real processes: pool-a hosts experts
// 0-5 of every layer, pool-b experts 6-7, under 32 concurrent streams. Reports, before and after
// one rebalance: per-layer balancedness (the router's measured, windowed definition) and
// generated tokens/s; the time from the decision to the first token a new replica computes; and
// the throughput dip while the change happens (the worst 1 s window after the decision against
// the mean before).
//   rebalance_bench --model=models/brown-moe --phase_s=20
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "moe/v1/orchestrator.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"
#include "tests/integration/cluster.h"

ABSL_FLAG(std::string, model, "models/brown-moe", "checkpoint");
ABSL_FLAG(int, streams, 32, "concurrent Generate streams");
ABSL_FLAG(int, tokens, 32, "tokens per request (each stream repeats requests)");
ABSL_FLAG(double, phase_s, 20, "seconds measured before and after the rebalance");
ABSL_FLAG(double, warmup_s, 5, "seconds of load before measuring");

namespace {

// Generated tokens, counted as they arrive, by every stream.
class Load {
 public:
  Load(moe::v1::Orchestrator::Stub* stub, int streams, int tokens) {
    for (int i = 0; i < streams; ++i) {
      threads_.emplace_back([this, stub, i, tokens] {
        for (int r = 0; !stop_.load(); ++r) {
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
          moe::v1::GenerateRequest req;
          req.set_prompt("The jury said it did find that");
          req.set_max_tokens(tokens);
          req.set_temperature(0.8f);
          req.set_seed(1000 * i + r + 1);
          auto reader = stub->Generate(&ctx, req);
          moe::v1::GenerateResponse msg;
          while (reader->Read(&msg)) tokens_.fetch_add(1);
          if (!reader->Finish().ok()) failed_.fetch_add(1);
          requests_.fetch_add(1);
        }
      });
    }
  }
  ~Load() {
    stop_ = true;
    for (auto& t : threads_) t.join();
  }
  int64_t tokens() const { return tokens_.load(); }
  int64_t failed() const { return failed_.load(); }
  int64_t requests() const { return requests_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> tokens_{0}, failed_{0}, requests_{0};
  std::vector<std::thread> threads_;
};

moe::v1::Placement GetPlacement(moe::v1::Router::Stub& router) {
  moe::v1::Placement p;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  (void)router.GetPlacement(&ctx, moe::v1::GetPlacementRequest(), &p);
  return p;
}

std::string Balancedness(const moe::v1::Placement& p) {
  std::string out;
  for (const auto& l : p.layers())
    absl::StrAppend(&out, absl::StrFormat(" L%d %.3f", l.layer(), l.balancedness()));
  return out;
}

// (layer, expert) pairs of pool `index`.
std::set<std::pair<int, int>> Hosted(const moe::v1::Placement& p, int index) {
  std::set<std::pair<int, int>> out;
  for (const auto& h : p.pools(index).hosts()) {
    for (int e : h.experts()) out.insert({h.layer(), e});
  }
  return out;
}

// Tokens a pool computed for the given experts, from its /metrics page.
double Computed(int metrics_port, const std::set<std::pair<int, int>>& experts) {
  std::string page;
  moe::testing::Cluster::RunToCompletion(
      {"/usr/bin/curl", "-s", absl::StrCat("http://127.0.0.1:", metrics_port, "/metrics")}, &page);
  double sum = 0;
  for (absl::string_view line : absl::StrSplit(page, '\n')) {
    if (!absl::StartsWith(line, "moe_expert_tokens_computed_total{")) continue;
    for (const auto& [l, e] : experts) {
      if (!absl::StrContains(line, absl::StrCat("expert=\"", e, "\",layer=\"", l, "\""))) continue;
      double v = 0;
      if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) sum += v;
    }
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  moe::testing::ClusterOptions o;
  o.model_args = {"--model=" + absl::GetFlag(FLAGS_model), "--threads=1"};
  o.pools = {{"pool-a", "0-5", ""}, {"pool-b", "6-7", ""}};
  o.metrics = true;
  o.router_args = {"--rebalance_interval_s=0", "--load_window_s=5", "--drop_grace_ms=200"};
  moe::testing::Cluster cluster(o);
  if (absl::Status s = cluster.Start(); !s.ok()) {
    return std::fprintf(stderr, "%s\n", s.ToString().c_str()), 1;
  }
  auto orchestrator = moe::v1::Orchestrator::NewStub(
      grpc::CreateChannel(cluster.address("orchestrator"), grpc::InsecureChannelCredentials()));
  auto router = moe::v1::Router::NewStub(
      grpc::CreateChannel(cluster.address("router"), grpc::InsecureChannelCredentials()));
  const double phase = absl::GetFlag(FLAGS_phase_s);

  Load load(orchestrator.get(), absl::GetFlag(FLAGS_streams), absl::GetFlag(FLAGS_tokens));
  absl::SleepFor(absl::Seconds(absl::GetFlag(FLAGS_warmup_s)));

  // (time, tokens so far) every 100 ms for the rest of the run.
  absl::Mutex mu;
  std::vector<std::pair<absl::Time, int64_t>> samples;
  std::atomic<bool> stop_sampling{false};
  std::thread sampler([&] {
    while (!stop_sampling.load()) {
      {
        absl::MutexLock lock(&mu);
        samples.push_back({absl::Now(), load.tokens()});
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
  });
  auto rate = [&](absl::Time from, absl::Time to) {  // tokens/s between two times
    absl::MutexLock lock(&mu);
    const std::pair<absl::Time, int64_t>* a = nullptr;
    const std::pair<absl::Time, int64_t>* b = nullptr;
    for (const auto& s : samples) {
      if (a == nullptr && s.first >= from) a = &s;
      if (s.first <= to) b = &s;
    }
    if (a == nullptr || b == nullptr || b->first <= a->first) return 0.0;
    return (b->second - a->second) / absl::ToDoubleSeconds(b->first - a->first);
  };

  const absl::Time t0 = absl::Now();
  absl::SleepFor(absl::Seconds(phase));
  const absl::Time t0_end = absl::Now();
  const double before_tps = rate(t0, t0_end);
  // The noise floor of the dip: the worst 1 s window of the steady "before" phase.
  double worst_before = 1e18;
  for (absl::Time w = t0; w + absl::Seconds(1) <= t0_end; w += absl::Milliseconds(100)) {
    worst_before = std::min(worst_before, rate(w, w + absl::Seconds(1)));
  }
  const moe::v1::Placement before = GetPlacement(*router);

  // The decision, and the first token of a new replica (polled from pool-b's metrics).
  const absl::Time decided = absl::Now();
  moe::v1::RebalanceResponse r;
  std::atomic<bool> done{false};
  double change_s = 0;
  std::thread rebalance([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    const grpc::Status st = router->Rebalance(&ctx, moe::v1::RebalanceRequest(), &r);
    if (!st.ok()) std::fprintf(stderr, "Rebalance: %s\n", st.error_message().c_str());
    change_s = absl::ToDoubleSeconds(absl::Now() - decided);
    done = true;
  });
  const std::set<std::pair<int, int>> had = Hosted(before, 1);
  double first_token_s = -1;
  const absl::Time poll_end = decided + absl::Seconds(phase);
  while (absl::Now() < poll_end && first_token_s < 0) {
    std::set<std::pair<int, int>> fresh;
    for (const auto& k : Hosted(GetPlacement(*router), 1)) {
      if (had.count(k) == 0) fresh.insert(k);
    }
    if (!fresh.empty() && Computed(cluster.metrics_port("pool-b"), fresh) > 0) {
      first_token_s = absl::ToDoubleSeconds(absl::Now() - decided);
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  rebalance.join();
  // The dip: the worst 1 s window from the decision until 2 s after the change completed,
  // against the mean rate before.
  absl::SleepFor(absl::Seconds(3));
  double worst = 1e18;
  for (absl::Time w = decided; w + absl::Seconds(1) <= decided + absl::Seconds(change_s + 2);
       w += absl::Milliseconds(100)) {
    worst = std::min(worst, rate(w, w + absl::Seconds(1)));
  }
  // Settle one load window, then measure "after" the same way as "before".
  absl::SleepFor(absl::Seconds(2));
  const absl::Time t1 = absl::Now();
  absl::SleepFor(absl::Seconds(phase));
  const double after_tps = rate(t1, absl::Now());
  const moe::v1::Placement after = GetPlacement(*router);
  stop_sampling = true;
  sampler.join();

  std::printf("rebalance_bench: %d streams, %d tokens per request, phases of %.0f s\n",
              absl::GetFlag(FLAGS_streams), absl::GetFlag(FLAGS_tokens), phase);
  std::printf("  balancedness before:%s\n", Balancedness(before).c_str());
  std::printf("  balancedness after: %s\n", Balancedness(after).c_str());
  std::printf("  planned:");
  for (int l = 0; l < r.predicted_before_size(); ++l) {
    std::printf(" L%d %.3f->%.3f", l, r.predicted_before(l), r.predicted_after(l));
  }
  std::printf("\n  tokens/s before %.1f, after %.1f (ratio %.3f)\n", before_tps, after_tps,
              after_tps / before_tps);
  std::printf("  decision -> first token of a new replica: %.3f s; rebalance call took %.3f s\n",
              first_token_s, change_s);
  std::printf(
      "  dip: worst 1 s window during the change %.1f tokens/s (%.1f%% below before); "
      "worst 1 s window before it, steady: %.1f%% below\n",
      worst, 100.0 * (1 - worst / before_tps), 100.0 * (1 - worst_before / before_tps));
  std::printf("  epoch %llu -> %llu; failed requests %lld of %lld\n",
              static_cast<unsigned long long>(before.epoch()),
              static_cast<unsigned long long>(after.epoch()), static_cast<long long>(load.failed()),
              static_cast<long long>(load.requests()));
  return 0;
}
