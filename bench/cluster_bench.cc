// Distributed vs embedded, measured in one run on the same model: single-stream decode
// ms/token, and generated tokens/s with 1, 8 and 32 concurrent streams. The distributed side is
// real processes on loopback (router, 2 pools, orchestrator; 1 intra-op thread each).
//   cluster_bench --model=models/brown-moe --tokens=64 --repeats=3
// Further clusters run side by side, each repeat visiting all of them in turn: a baseline
// orchestrator (--baseline="--micro_batches=1"), unary internal calls (--compare_unary), and
// clusters whose router and pools sit behind a TCP delay line (--delays_us=0,100,500: added each
// way). --profile splits each cluster's decode step by the services' own timers.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/time/clock.h"
#include "bench/delay_proxy.h"
#include "models/embedded.h"
#include "moe/v1/orchestrator.grpc.pb.h"
#include "moe/v1/router.pb.h"
#include "services/common/tensor_codec.h"
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
ABSL_FLAG(std::string, orchestrator_args, "",
          "extra flags for the first cluster's orchestrator, space-separated");
ABSL_FLAG(std::string, baseline, "",
          "flags (space-separated) of a second orchestrator measured beside the first, e.g. "
          "\"--micro_batches=1\"; empty = none");
ABSL_FLAG(std::string, delays_us, "",
          "comma-separated delays in microseconds, added each way by a TCP delay line in front of "
          "the router and every pool: one more cluster per delay (0 = through the proxy, nothing "
          "added)");
ABSL_FLAG(bool, profile, false,
          "split every cluster's decode step by the services' own timers (metrics on)");

namespace {

constexpr char kPrompt[] = "The jury said it did find that";

// What one measurement gives: wall seconds, tokens, mean ms between tokens.
struct Run {
  double seconds = 0;
  int64_t tokens = 0;
  double ms_per_token = 0;  // single stream: time between first and last token / (n - 1)
};

// One Generate stream read by gRPC's own threads (the callback API): the benchmark's client
// shares the cluster's 2 cores, and a thread blocked in Read per stream cost it a thread switch
// per token (~10% of the machine's CPU at 32 streams, perf).
class GenerateReader : public grpc::ClientReadReactor<moe::v1::GenerateResponse> {
 public:
  GenerateReader(moe::v1::Orchestrator::Stub& stub, int seed, int tokens) {
    req_.set_prompt(kPrompt);
    req_.set_max_tokens(tokens);
    req_.set_temperature(0);
    req_.set_seed(seed);
    stub.async()->Generate(&ctx_, &req_, this);
    StartRead(&msg_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    last_ = absl::Now();
    if (count_++ == 0) first_ = last_;
    StartRead(&msg_);
  }
  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    status_ = status;
    done_ = true;
  }
  // Waits for the stream's end; returns its status.
  grpc::Status Await() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
    return status_;
  }
  int64_t count() const { return count_; }
  // Mean time between tokens, ms (0 with fewer than 2). REQUIRES: Await returned.
  double ms_between_tokens() const {
    return count_ > 1 ? absl::ToDoubleMilliseconds(last_ - first_) / (count_ - 1) : 0;
  }

 private:
  grpc::ClientContext ctx_;
  moe::v1::GenerateRequest req_;
  moe::v1::GenerateResponse msg_;
  int64_t count_ = 0;  // written by gRPC's threads, one callback at a time; read after OnDone
  absl::Time first_, last_;
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

// Runs n concurrent Generate streams; returns {wall seconds, tokens, mean ms between tokens}.
Run Remote(moe::v1::Orchestrator::Stub& stub, int n, int tokens) {
  Run r;
  const absl::Time start = absl::Now();
  std::vector<std::unique_ptr<GenerateReader>> readers;
  for (int i = 0; i < n; ++i)
    readers.push_back(std::make_unique<GenerateReader>(stub, i + 1, tokens));
  for (int i = 0; i < n; ++i) {
    if (const grpc::Status s = readers[i]->Await(); !s.ok()) {
      std::fprintf(stderr, "stream %d failed: %s\n", i, s.error_message().c_str());
    }
  }
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  for (const auto& reader : readers) {
    r.tokens += reader->count();
    r.ms_per_token += reader->ms_between_tokens() / n;
  }
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

// GET /metrics from a local port; empty on failure.
std::string Scrape(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[1 << 14];
      for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;) out.append(buf, n);
    }
  }
  ::close(fd);
  return out;
}

// Sum over label sets of every sample named exactly `name`.
double Sample(const std::string& text, const std::string& name) {
  double total = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, name)) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != ' ' && next != '{') continue;
    double v = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) total += v;
  }
  return total;
}

// CPU seconds (user + system) so far of each of a cluster's processes, found among this
// process's children by their --listen flag.
std::map<std::string, double> ProcessCpu(const moe::testing::Cluster& c) {
  std::map<std::string, double> out;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename();
    if (pid.empty() || !std::isdigit(static_cast<unsigned char>(pid[0]))) continue;
    std::ifstream cmd(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(cmd)), std::istreambuf_iterator<char>());
    for (const char* name : {"orchestrator", "router", "pool-a", "pool-b"}) {
      const std::string listen = std::string("--listen=") + c.address(name) + '\0';
      if (cmdline.find(listen) == std::string::npos) continue;
      std::ifstream stat(entry.path() / "stat");
      std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
      // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
      std::vector<std::string> f = absl::StrSplit(text.substr(text.rfind(')') + 2), ' ');
      double utime = 0, stime = 0;
      if (f.size() > 12 && absl::SimpleAtod(f[11], &utime) && absl::SimpleAtod(f[12], &stime)) {
        out[name] = (utime + stime) / tick;
      }
    }
  }
  return out;
}

double SelfCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

// The services' timers, summed over the cluster.
struct Timers {
  std::map<std::string, double> cpu;  // seconds, per process
  double route_client_s = 0, route_client_n = 0, route_server_s = 0, route_server_n = 0;
  double fwd_client_s = 0, fwd_client_n = 0, fwd_server_s = 0, fwd_server_n = 0;
  double steps = 0, step_tokens = 0;
  double kept = 0, resent = 0;  // speculative Forward outcomes
  static Timers Read(const moe::testing::Cluster& c) {
    Timers t;
    t.cpu = ProcessCpu(c);
    const std::string o = Scrape(c.metrics_port("orchestrator"));
    const std::string r = Scrape(c.metrics_port("router"));
    const std::string a = Scrape(c.metrics_port("pool-a")) + Scrape(c.metrics_port("pool-b"));
    t.route_client_s = Sample(o, "moe_route_call_duration_seconds_sum");
    t.route_client_n = Sample(o, "moe_route_call_duration_seconds_count");
    t.fwd_client_s = Sample(o, "moe_forward_call_duration_seconds_sum");
    t.fwd_client_n = Sample(o, "moe_forward_call_duration_seconds_count");
    t.steps = Sample(o, "moe_decode_batch_size_count");
    t.step_tokens = Sample(o, "moe_decode_batch_size_sum");
    for (absl::string_view line : absl::StrSplit(o, '\n')) {
      if (!absl::StartsWith(line, "moe_speculative_layers_total{")) continue;
      double v = 0;
      if (!absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) continue;
      (absl::StrContains(line, "\"kept\"") ? t.kept : t.resent) += v;
    }
    t.route_server_s = Sample(r, "moe_route_duration_seconds_sum");
    t.route_server_n = Sample(r, "moe_route_duration_seconds_count");
    t.fwd_server_s = Sample(a, "moe_forward_duration_seconds_sum");
    t.fwd_server_n = Sample(a, "moe_forward_duration_seconds_count");
    return t;
  }
};

// Microseconds to encode a [n, d] float tensor into a RouteRequest, serialize it, parse it and
// decode it: the codec's share of one message each way.
double CodecMicros(int n, int d) {
  torch::Tensor x = torch::randn({n, d});
  constexpr int kIters = 2000;
  const absl::Time start = absl::Now();
  for (int i = 0; i < kIters; ++i) {
    moe::v1::RouteRequest req;
    moe::EncodeTensor(x, req.mutable_hidden());
    std::string wire = req.SerializeAsString();
    moe::v1::RouteRequest back;
    back.ParseFromString(wire);
    (void)moe::DecodeTensor(back.hidden(), "hidden", {{n, d}, true});
  }
  return absl::ToDoubleMicroseconds(absl::Now() - start) / kIters;
}

// One decode step's time by hop, from the timers' change over a run.
void PrintProfile(const std::string& label, int streams, int lanes, const Run& run, const Timers& a,
                  const Timers& b) {
  const double steps = b.steps - a.steps;
  if (steps <= 0) return;
  const double route_c =
      (b.route_client_s - a.route_client_s) / (b.route_client_n - a.route_client_n);
  const double route_s =
      (b.route_server_s - a.route_server_s) / (b.route_server_n - a.route_server_n);
  const double fwd_c = (b.fwd_client_s - a.fwd_client_s) / (b.fwd_client_n - a.fwd_client_n);
  const double fwd_s = (b.fwd_server_s - a.fwd_server_s) / (b.fwd_server_n - a.fwd_server_n);
  const double batch = (b.step_tokens - a.step_tokens) / steps;
  // Steps of different lanes overlap: a lane's step lasts the run's time over its own steps. The
  // lanes that had work: the streams over a step's mean batch (lanes fill to --lane_rows first).
  const double busy_lanes =
      std::clamp(std::round(streams / batch), 1.0, static_cast<double>(std::min(lanes, streams)));
  const double step_us = run.seconds * 1e6 * busy_lanes / steps;
  const double msgs_per_step = (b.route_client_n - a.route_client_n) / steps;
  std::printf(
      "{\"profile\": \"%s\", \"streams\": %d, \"steps\": %.0f, \"mean_batch\": %.1f, "
      "\"lane_step_us\": %.0f, "
      "\"route_msgs_per_step\": %.1f, \"route_client_us\": %.0f, \"route_handler_us\": %.0f, "
      "\"route_transport_us\": %.0f, \"forward_client_us\": %.0f, \"forward_handler_us\": %.0f, "
      "\"forward_transport_us\": %.0f, \"codec_us_per_message\": %.1f, "
      "\"predicted_layer_share\": %.2f, \"cpu_us_per_token\": {",
      label.c_str(), streams, steps, batch, step_us, msgs_per_step, route_c * 1e6, route_s * 1e6,
      (route_c - route_s) * 1e6, fwd_c * 1e6, fwd_s * 1e6, (fwd_c - fwd_s) * 1e6,
      CodecMicros(static_cast<int>(batch + 0.5), 192),
      (b.kept - a.kept) / std::max(1.0, b.kept - a.kept + b.resent - a.resent));
  double total = 0;
  for (const auto& [name, seconds] : b.cpu) {
    const double us = (seconds - a.cpu.at(name)) * 1e6 / run.tokens;
    total += us;
    std::printf("\"%s\": %.0f, ", name.c_str(), us);
  }
  std::printf("\"total\": %.0f}}\n", total);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int tokens = absl::GetFlag(FLAGS_tokens);
  const int reps = absl::GetFlag(FLAGS_repeats);
  const int lanes = absl::GetFlag(FLAGS_lanes);
  moe::SetIntraOpThreads(1);
  moe::ModelSource source;
  source.model_dir = absl::GetFlag(FLAGS_model);
  moe::EngineOptions options;
  options.max_batch = 32;
  auto local = moe::EmbeddedModel::Load(source, options);
  if (!local.ok()) return std::fprintf(stderr, "%s\n", local.status().ToString().c_str()), 1;

  // The clusters, in the order each repeat visits them.
  struct Variant {
    std::string label;
    std::vector<std::string> args;
    int delay_us = -1;  // >= 0: router and pools behind a delay line
  };
  auto split = [](const std::string& flags) {
    return std::vector<std::string>(absl::StrSplit(flags, ' ', absl::SkipEmpty()));
  };
  std::vector<Variant> variants = {{"distributed", split(absl::GetFlag(FLAGS_orchestrator_args))}};
  if (!absl::GetFlag(FLAGS_baseline).empty()) {
    variants.push_back({"baseline", split(absl::GetFlag(FLAGS_baseline))});
  }
  if (absl::GetFlag(FLAGS_compare_unary)) {
    variants.push_back({"unary", {"--internal_streams=false"}});
  }
  for (absl::string_view d :
       absl::StrSplit(absl::GetFlag(FLAGS_delays_us), ',', absl::SkipEmpty())) {
    int us = 0;
    if (!absl::SimpleAtoi(d, &us) || us < 0) {
      return std::fprintf(stderr, "--delays_us: want non-negative integers, got \"%s\"\n",
                          std::string(d).c_str()),
             1;
    }
    variants.push_back({absl::StrCat("delay_", us, "us"), variants[0].args, us});
  }
  std::vector<std::unique_ptr<moe::bench::DelayProxy>> proxies;
  std::vector<std::unique_ptr<moe::testing::Cluster>> clusters;
  std::vector<std::unique_ptr<moe::v1::Orchestrator::Stub>> stubs;
  for (size_t v = 0; v < variants.size(); ++v) {
    moe::testing::ClusterOptions o = moe::testing::TwoPoolOptions(source.model_dir);
    o.orchestrator_args = {absl::StrCat("--lanes=", lanes)};
    for (const std::string& a : variants[v].args) o.orchestrator_args.push_back(a);
    o.metrics = absl::GetFlag(FLAGS_profile);
    if (const int us = variants[v].delay_us; us >= 0) {
      o.advertise = [&proxies, us](const std::string&, const std::string& listen) {
        auto p = moe::bench::DelayProxy::Start(listen, absl::Microseconds(us));
        if (!p.ok()) return listen;
        proxies.push_back(*std::move(p));
        return proxies.back()->address();
      };
    }
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
    std::vector<Run> best(variants.size());
    Run best_local;
    for (Run& b : best) b.seconds = 1e9;
    best_local.seconds = 1e9;
    for (int r = 0; r < reps; ++r) {
      for (size_t v = 0; v < variants.size(); ++v) {
        const bool profile = absl::GetFlag(FLAGS_profile);
        Timers before;
        if (profile) before = Timers::Read(*clusters[v]);
        Run a = Remote(*stubs[v], n, tokens);
        if (profile) {
          PrintProfile(variants[v].label, n, lanes, a, before, Timers::Read(*clusters[v]));
        }
        if (a.seconds < best[v].seconds) best[v] = a;
      }
      if (!absl::GetFlag(FLAGS_embedded)) continue;
      const double cpu0 = SelfCpuSeconds();
      Run b = Local(**local, n, tokens);
      if (absl::GetFlag(FLAGS_profile)) {
        std::printf("{\"profile\": \"embedded\", \"streams\": %d, \"cpu_us_per_token\": %.0f}\n", n,
                    (SelfCpuSeconds() - cpu0) * 1e6 / b.tokens);
      }
      if (b.seconds < best_local.seconds) best_local = b;
    }
    // Without the embedded run its figures and the ratios to it are null (valid JSON, not inf).
    const bool embedded = absl::GetFlag(FLAGS_embedded);
    const double local_tps = best_local.tokens / best_local.seconds;
    auto number = [embedded](double x, int digits) {
      return embedded ? absl::StrFormat("%.*f", digits, x) : std::string("null");
    };
    std::printf("{\"streams\": %d, \"embedded_tokens_per_s\": %s, \"embedded_ms_per_token\": %s", n,
                number(local_tps, 0).c_str(), number(best_local.ms_per_token, 3).c_str());
    for (size_t v = 0; v < variants.size(); ++v) {
      const double tps = best[v].tokens / best[v].seconds;
      const std::string& l = variants[v].label;
      std::printf(", \"%s_tokens_per_s\": %.0f, \"%s_ratio\": %s, \"%s_ms_per_token\": %.3f",
                  l.c_str(), tps, l.c_str(), number(tps / local_tps, 2).c_str(), l.c_str(),
                  best[v].ms_per_token);
      if (v > 0) {
        const double first = best[0].tokens / best[0].seconds;
        std::printf(", \"%s_vs_distributed\": %.2f", l.c_str(), tps / first);
      }
    }
    std::printf("}\n");
    std::fflush(stdout);
  }
  return 0;
}
