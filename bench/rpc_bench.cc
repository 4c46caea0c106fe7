// Per-call latency of the cluster's internal RPCs, client side, on an idle cluster: an empty
// call (GetPolicy: the transport alone), Route for a decode step and Forward for one pool, at a
// few batch sizes, each as a unary call and as one message on a persistent stream (what the
// orchestrator sends). Compare with the services' own handler histograms to split transport from
// work.
//   rpc_bench --model=models/brown-moe --calls=2000
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "moe/v1/expert.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"
#include "services/common/server.h"
#include "tests/integration/cluster.h"

ABSL_FLAG(std::string, model, "models/brown-moe", "checkpoint");
ABSL_FLAG(int, calls, 2000, "calls per measurement");
ABSL_FLAG(std::string, batches, "1,32", "tokens per call");
ABSL_FLAG(int, d_model, 192, "hidden size of the model");
ABSL_FLAG(int, gap_us, 0,
          "idle time before each timed call, as between a token's calls in a running cluster "
          "(the server sleeps in between)");

namespace {

struct Stats {
  double p50_us = 0, p90_us = 0, mean_us = 0;
};

template <typename Fn>
Stats Time(int calls, Fn fn) {
  std::vector<double> us;
  us.reserve(calls);
  for (int i = 0; i < calls / 10; ++i) fn();  // warm-up
  const absl::Duration gap = absl::Microseconds(absl::GetFlag(FLAGS_gap_us));
  for (int i = 0; i < calls; ++i) {
    if (gap > absl::ZeroDuration()) absl::SleepFor(gap);
    const absl::Time t = absl::Now();
    if (!fn()) {
      std::fprintf(stderr, "call failed\n");
      std::exit(1);
    }
    us.push_back(absl::ToDoubleMicroseconds(absl::Now() - t));
  }
  Stats s;
  for (double u : us) s.mean_us += u / us.size();
  std::sort(us.begin(), us.end());
  s.p50_us = us[us.size() / 2];
  s.p90_us = us[us.size() * 9 / 10];
  return s;
}

void Print(const char* what, int batch, const Stats& s) {
  std::printf(
      "{\"call\": \"%s\", \"tokens\": %d, \"p50_us\": %.0f, \"p90_us\": %.0f, "
      "\"mean_us\": %.0f}\n",
      what, batch, s.p50_us, s.p90_us, s.mean_us);
  std::fflush(stdout);
}

// One request and its response per timed call, on one stream opened by `open`.
template <typename Resp, typename Open, typename Req>
void TimeStreamMessages(const char* what, int tokens, int calls, Open open, const Req& req) {
  grpc::ClientContext ctx;
  auto stream = open(&ctx);
  Print(what, tokens, Time(calls, [&] {
          Resp resp;
          return stream->Write(req) && stream->Read(&resp);
        }));
  stream->WritesDone();
  (void)stream->Finish();
}

void Fill(moe::v1::Tensor* t, int rows, int cols, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::vector<float> v(static_cast<size_t>(rows) * cols);
  for (float& x : v) x = normal(rng);
  t->set_dtype(moe::v1::DTYPE_FLOAT32);
  t->add_shape(rows);
  t->add_shape(cols);
  t->set_data(v.data(), v.size() * sizeof(float));
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int calls = absl::GetFlag(FLAGS_calls);
  const int d = absl::GetFlag(FLAGS_d_model);
  moe::testing::ClusterOptions o = moe::testing::TwoPoolOptions(absl::GetFlag(FLAGS_model));
  moe::testing::Cluster cluster(o);
  if (absl::Status s = cluster.Start(); !s.ok()) {
    return std::fprintf(stderr, "%s\n", s.ToString().c_str()), 1;
  }
  // The orchestrator's channel settings, so that these are the calls it makes.
  const grpc::ChannelArguments args = moe::InternalChannelArguments();
  auto router = moe::v1::Router::NewStub(grpc::CreateCustomChannel(
      cluster.address("router"), grpc::InsecureChannelCredentials(), args));
  auto pool = moe::v1::ExpertPool::NewStub(grpc::CreateCustomChannel(
      cluster.address("pool-a"), grpc::InsecureChannelCredentials(), args));

  Print("GetPolicy (empty)", 0, Time(calls, [&] {
          grpc::ClientContext ctx;
          moe::v1::GetPolicyRequest req;
          moe::v1::RoutingPolicy resp;
          return router->GetPolicy(&ctx, req, &resp).ok();
        }));
  std::mt19937 rng(1);
  for (absl::string_view b : absl::StrSplit(absl::GetFlag(FLAGS_batches), ',')) {
    const int n = std::stoi(std::string(b));
    moe::v1::RouteRequest route;
    route.set_layer(1);
    Fill(route.mutable_hidden(), n, d, rng);
    for (int i = 0; i < n; ++i) route.add_token_keys(i * 7919 + 1);
    Print("Route", n, Time(calls, [&] {
            grpc::ClientContext ctx;
            moe::v1::RouteResponse resp;
            return router->Route(&ctx, route, &resp).ok();
          }));
    TimeStreamMessages<moe::v1::RouteResponse>(
        "RouteStream (one message)", n, calls,
        [&](grpc::ClientContext* ctx) { return router->RouteStream(ctx); }, route);
    // Half the tokens to each of two hosted experts: a decode step's share for one pool.
    moe::v1::ForwardRequest fwd;
    fwd.set_layer(1);
    Fill(fwd.mutable_hidden(), n, d, rng);
    for (int e = 0; e < 2; ++e) {
      moe::v1::ExpertWork* w = fwd.add_work();
      w->set_expert(e);
      for (int i = 0; i < n; ++i) w->add_rows(i);
    }
    double server_seconds = 0;
    int server_calls = 0;
    Print("Forward (2 experts)", n, Time(calls, [&] {
            grpc::ClientContext ctx;
            moe::v1::ForwardResponse resp;
            if (!pool->Forward(&ctx, fwd, &resp).ok()) return false;
            server_seconds += resp.compute_seconds();
            ++server_calls;
            return true;
          }));
    std::printf(
        "{\"call\": \"Forward handler (server side)\", \"tokens\": %d, \"mean_us\": %.0f}\n", n,
        1e6 * server_seconds / server_calls);
    TimeStreamMessages<moe::v1::ForwardResponse>(
        "ForwardStream (one message)", n, calls,
        [&](grpc::ClientContext* ctx) { return pool->ForwardStream(ctx); }, fwd);
  }
  return 0;
}
