// The routing event stream under load: generation throughput (8 concurrent streams) with 0, 1
// and 8 subscribers reading everything (8 that parse every event, as a client would, and 8 that
// take the bytes only, to separate the orchestrator's cost from the subscribers' own on these
// shared cores), and with one stalled subscriber that never reads; the events per second one
// subscriber receives; the drops counted for the stalled one.
//   events_bench --model=models/brown-moe --tokens=64 --repeats=7
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "moe/v1/orchestrator.grpc.pb.h"
#include "tests/integration/cluster.h"

ABSL_FLAG(std::string, model, "models/brown-moe", "checkpoint");
ABSL_FLAG(int, tokens, 48, "tokens per generation stream");
ABSL_FLAG(int, streams, 8, "concurrent generation streams");
ABSL_FLAG(int, repeats, 7, "pairs of runs per configuration (medians reported)");

namespace {

double Generate(moe::v1::Orchestrator::Stub& stub, int n, int tokens) {
  std::vector<std::thread> threads;
  std::atomic<int64_t> total{0};
  const absl::Time start = absl::Now();
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      grpc::ClientContext ctx;
      moe::v1::GenerateRequest req;
      req.set_prompt("The jury said it did find that");
      req.set_max_tokens(tokens);
      req.set_temperature(0);
      req.set_seed(i + 1);
      auto reader = stub.Generate(&ctx, req);
      moe::v1::GenerateResponse msg;
      while (reader->Read(&msg)) ++total;
      (void)reader->Finish();
    });
  }
  for (auto& t : threads) t.join();
  return total / absl::ToDoubleSeconds(absl::Now() - start);
}

uint64_t ReadVarint(const std::string& b, size_t* pos) {
  uint64_t v = 0;
  for (int shift = 0; *pos < b.size() && shift < 64; shift += 7) {
    const uint8_t byte = static_cast<uint8_t>(b[(*pos)++]);
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (!(byte & 0x80)) break;
  }
  return v;
}

// Events in a serialized WatchRoutingResponse, from its top-level fields alone.
int64_t CountEvents(const grpc::ByteBuffer& message) {
  std::vector<grpc::Slice> slices;
  (void)message.Dump(&slices);
  std::string b;
  for (const grpc::Slice& s : slices) b.append(reinterpret_cast<const char*>(s.begin()), s.size());
  int64_t events = 0;
  for (size_t pos = 0; pos < b.size();) {
    const uint64_t tag = ReadVarint(b, &pos);
    if ((tag & 7) == 2) {
      pos += ReadVarint(b, &pos);
      if ((tag >> 3) == 1) ++events;
    } else {
      ReadVarint(b, &pos);
    }
  }
  return events;
}

// One subscriber that takes the stream's bytes without parsing its events: what the
// orchestrator pays to serve a subscriber, without the subscriber's own parsing cost.
void ReadBytes(grpc::GenericStub& generic, grpc::ClientContext* ctx, std::atomic<int64_t>* events) {
  grpc::CompletionQueue cq;
  auto call = generic.PrepareCall(ctx, "/moe.v1.Orchestrator/WatchRouting", &cq);
  void* tag = nullptr;
  bool ok = false;
  call->StartCall(nullptr);
  if (cq.Next(&tag, &ok) && ok) {
    grpc::Slice request(moe::v1::WatchRoutingRequest().SerializeAsString());
    call->WriteLast(grpc::ByteBuffer(&request, 1), grpc::WriteOptions(), nullptr);
    cq.Next(&tag, &ok);
    grpc::ByteBuffer message;
    for (;;) {
      call->Read(&message, nullptr);
      if (!cq.Next(&tag, &ok) || !ok) break;
      *events += CountEvents(message);
    }
  }
  grpc::Status status;
  call->Finish(&status, nullptr);
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

// Subscribers that read as fast as they can, counting events, until cancelled. `parse`: as a
// client would (every event parsed); otherwise bytes only (ReadBytes).
struct Readers {
  std::vector<std::unique_ptr<grpc::ClientContext>> ctx;
  std::vector<std::thread> threads;
  std::atomic<int64_t> events{0};
  grpc::GenericStub generic;
  Readers(moe::v1::Orchestrator::Stub& stub, const std::shared_ptr<grpc::Channel>& channel, int n,
          bool parse)
      : generic(channel) {
    for (int i = 0; i < n; ++i) {
      ctx.push_back(std::make_unique<grpc::ClientContext>());
      grpc::ClientContext* c = ctx.back().get();
      threads.emplace_back([this, &stub, c, parse] {
        if (!parse) return ReadBytes(generic, c, &events);
        auto reader = stub.WatchRouting(c, moe::v1::WatchRoutingRequest());
        moe::v1::WatchRoutingResponse batch;
        while (reader->Read(&batch)) events += batch.events_size();
        (void)reader->Finish();
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  ~Readers() {
    for (auto& c : ctx) c->TryCancel();
    for (auto& t : threads) t.join();
  }
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  moe::testing::ClusterOptions o = moe::testing::TwoPoolOptions(absl::GetFlag(FLAGS_model));
  moe::testing::Cluster cluster(o);
  if (absl::Status s = cluster.Start(); !s.ok()) {
    return std::fprintf(stderr, "%s\n", s.ToString().c_str()), 1;
  }
  auto channel =
      grpc::CreateChannel(cluster.address("orchestrator"), grpc::InsecureChannelCredentials());
  auto stub = moe::v1::Orchestrator::NewStub(channel);
  const int n = absl::GetFlag(FLAGS_streams), tokens = absl::GetFlag(FLAGS_tokens);
  const int repeats = absl::GetFlag(FLAGS_repeats);
  Generate(*stub, 2, 8);  // warm-up
  // The machine's speed drifts by more than the effect measured here: every configuration runs
  // in pairs with a run without subscribers right before it, and the slowdown reported is the
  // median over pairs of 1 - (with / without).
  struct Paired {
    double base = 0, with = 0, slowdown = 0;  // medians
  };
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  auto paired = [&](const std::function<double()>& with) {
    std::vector<double> bases, withs, slowdowns;
    for (int r = 0; r < repeats; ++r) {
      bases.push_back(Generate(*stub, n, tokens));
      withs.push_back(with());
      slowdowns.push_back(1 - withs.back() / bases.back());
    }
    return Paired{median(bases), median(withs), median(slowdowns)};
  };
  struct Config {
    int subscribers;
    bool parse;
  };
  for (const Config config : {Config{1, true}, Config{8, true}, Config{8, false}}) {
    const int subs = config.subscribers;
    double seconds = 0;
    int64_t events = 0;
    const Paired p = paired([&] {
      Readers readers(*stub, channel, subs, config.parse);
      const absl::Time start = absl::Now();
      const int64_t before = readers.events;
      const double t = Generate(*stub, n, tokens);
      seconds += absl::ToDoubleSeconds(absl::Now() - start);
      events += readers.events - before;
      return t;
    });
    std::printf(
        "{\"subscribers\": %d, \"parsed\": %s, \"tokens_per_s\": %.0f, "
        "\"baseline_tokens_per_s\": %.0f, \"slowdown\": %.3f, "
        "\"events_per_s_per_subscriber\": %.0f}\n",
        subs, config.parse ? "true" : "false", p.with, p.base, p.slowdown, events / seconds / subs);
    std::fflush(stdout);
  }
  {
    // A subscriber that never reads: the server must drop its oldest events, not slow down.
    // Its channel has a small fixed flow-control window, so the stall reaches the server's
    // queue quickly instead of being absorbed by megabytes of transport buffers.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 << 10);
    auto stalled_stub = moe::v1::Orchestrator::NewStub(grpc::CreateCustomChannel(
        cluster.address("orchestrator"), grpc::InsecureChannelCredentials(), args));
    uint64_t dropped = 0;
    const Paired p = paired([&] {
      grpc::ClientContext ctx;
      moe::v1::WatchRoutingRequest req;
      req.set_queue_size(256);
      auto stalled = stalled_stub->WatchRouting(&ctx, req);
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      const double t = Generate(*stub, n, tokens);
      // Now read what is left; the count rides on every message after the drops.
      std::thread stopper([&ctx] {
        std::this_thread::sleep_for(std::chrono::seconds(2));
        ctx.TryCancel();
      });
      moe::v1::WatchRoutingResponse batch;
      while (stalled->Read(&batch)) dropped = std::max<uint64_t>(dropped, batch.dropped());
      stopper.join();
      return t;
    });
    std::printf(
        "{\"subscribers\": \"1 stalled\", \"tokens_per_s\": %.0f, "
        "\"baseline_tokens_per_s\": %.0f, \"slowdown\": %.3f, \"dropped_events\": %llu}\n",
        p.with, p.base, p.slowdown, static_cast<unsigned long long>(dropped));
  }
  return 0;
}
