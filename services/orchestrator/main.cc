// moe-orchestrator: the public API. Runs the dense model and the batching engine; sends each
// MoE layer to the router and the expert pools named in the cluster file.
#include <prometheus/histogram.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "models/checkpoint.h"
#include "models/embedded.h"
#include "models/inference.h"
#include "models/routing.h"
#include "models/usage.h"
#include "services/common/flags.h"
#include "services/common/host_port.h"
#include "services/common/http_server.h"
#include "services/common/log.h"
#include "services/common/server.h"
#include "services/orchestrator/event_hub.h"
#include "services/orchestrator/openai_api.h"
#include "services/orchestrator/orchestrator_service.h"
#include "services/orchestrator/placement_watcher.h"
#include "services/orchestrator/remote_executor.h"

ABSL_FLAG(std::string, router, "",
          "the router's HOST:PORT; the pools are learnt from its answers. Default: the router "
          "of --cluster");
ABSL_FLAG(int, max_batch, 32, "sequences decoded together at most, per lane (continuous batching)");
ABSL_FLAG(bool, frames, true,
          "with --internal_streams and no TLS: send Route and Forward as raw TCP frames to every "
          "router and pool that offers them (GetFrameEndpoint), gRPC streams to the others");
ABSL_FLAG(bool, internal_streams, true,
          "send Route and Forward as messages on persistent streams (RouteStream, ForwardStream); "
          "false: one unary call each");
ABSL_FLAG(int, route_deadline_ms, 5000, "deadline of each Route message or call to the router");
ABSL_FLAG(int, forward_deadline_ms, 10000,
          "deadline of each Forward message or call to a pool: a pool that does not answer in "
          "time counts as failed (reported to the router; the layer is re-routed)");
ABSL_FLAG(int, max_requests, 256,
          "Generate/Complete requests admitted at a time (queued or decoding); more get "
          "RESOURCE_EXHAUSTED naming this flag");
ABSL_FLAG(int, max_watchers, 64,
          "WatchRouting streams open at a time; more get RESOURCE_EXHAUSTED naming this flag");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:8000",
          "HOST:PORT of the OpenAI-compatible HTTP API (POST /v1/completions, GET /v1/models); "
          "empty = off");
ABSL_FLAG(int, http_max_connections, 256,
          "HTTP API connections open at a time; more get 503 (each open request holds one)");
ABSL_FLAG(int, http_max_body_bytes, 1 << 20,
          "largest HTTP request body; a larger one is refused 413 before it is read");
ABSL_FLAG(int, lanes, 2,
          "engine lanes: batches stepped by separate threads, so that one computes its dense "
          "layers while another waits on the router and pools");
ABSL_FLAG(int, lane_rows, 16,
          "sequences a lane takes before the next lane gets any (then the least loaded lane): a "
          "small batch stays in one lane, where it costs half the messages per token; 1 = always "
          "the least loaded lane");
ABSL_FLAG(int, micro_batches, 2,
          "ping-pong micro-batches per lane: a decode step's batch is split into up to this many "
          "parts whose layers interleave on the lane's thread (one part's attention runs while "
          "another's experts compute on the pools); 1 = no split");
ABSL_FLAG(int, micro_batch_rows, 16,
          "fewest sequences in a micro-batch: a step of B sequences is split into "
          "min(--micro_batches, B / --micro_batch_rows) parts (at least 1)");
ABSL_FLAG(bool, speculative_forward, true,
          "send each pool its predicted work together with the Route message (from the router's "
          "last answer and the local gate), keeping only answers the router's answer confirms; "
          "false: each layer's Forward waits for its Route answer");

namespace {

// The engine's flags, checked before anything is loaded.
absl::Status CheckEngineFlags() {
  if (const int v = absl::GetFlag(FLAGS_lanes); v < 1 || v > 16) {
    return absl::InvalidArgumentError(absl::StrCat("--lanes: must be in [1, 16], got ", v));
  }
  if (const int v = absl::GetFlag(FLAGS_micro_batches); v < 1 || v > 16) {
    return absl::InvalidArgumentError(absl::StrCat("--micro_batches: must be in [1, 16], got ", v));
  }
  if (const int v = absl::GetFlag(FLAGS_micro_batch_rows); v < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--micro_batch_rows: must be >= 1, got ", v));
  }
  if (const int v = absl::GetFlag(FLAGS_lane_rows); v < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--lane_rows: must be >= 1, got ", v));
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  moe::InitServiceProcess();
  moe::InitUsage("moe-orchestrator --router=HOST:PORT --model=DIR --listen=HOST:PORT");
  absl::ParseCommandLine(argc, argv);
  const absl::StatusOr<moe::CommonFlags> parsed = moe::ReadCommonFlags();
  moe::Logger log("orchestrator");
  if (!parsed.ok()) return log.Error("flags", {{"error", parsed.status().ToString()}}), 1;
  const moe::CommonFlags& flags = *parsed;
  if (absl::Status s = CheckEngineFlags(); !s.ok()) {
    return log.Error("flags", {{"error", std::string(s.message())}}), 1;
  }
  moe::SetIntraOpThreads(flags.threads);
  absl::StatusOr<moe::Checkpoint> ckpt = moe::LoadModel(flags.model);
  if (!ckpt.ok()) return log.Error("model", {{"error", ckpt.status().ToString()}}), 1;
  absl::StatusOr<std::unique_ptr<moe::Tokenizer>> tokenizer =
      moe::LoadTokenizerFor(flags.model, ckpt->config);
  if (!tokenizer.ok()) return log.Error("tokenizer", {{"error", tokenizer.status().ToString()}}), 1;
  // Only the router's address is needed: the pools come with its Route answers.
  const std::string router_flag = absl::GetFlag(FLAGS_router);
  if (router_flag.empty() && flags.cluster.empty()) {
    return log.Error("flags", {{"error",
                                "--router: required (the router's HOST:PORT), or "
                                "--cluster=FILE naming it"}}),
           1;
  }
  absl::StatusOr<moe::ClusterSpec> cluster =
      flags.cluster.empty() ? moe::ClusterSpec() : moe::LoadCluster(flags.cluster, ckpt->config);
  if (!cluster.ok()) return log.Error("cluster", {{"error", cluster.status().ToString()}}), 1;
  if (!router_flag.empty()) {
    if (absl::Status s = moe::CheckDialable(router_flag, "--router"); !s.ok()) {
      return log.Error("flags", {{"error", s.ToString()}}), 1;
    }
    cluster->router_address = router_flag;
  }
  absl::StatusOr<moe::InferenceModel> model =
      moe::InferenceModel::Create(ckpt->config, ckpt->state);
  if (!model.ok()) return log.Error("model", {{"error", model.status().ToString()}}), 1;

  moe::ServiceHost host(moe::ServerOptionsFor("orchestrator", flags));
  moe::RemoteExecutorOptions remote_options;
  remote_options.streams = absl::GetFlag(FLAGS_internal_streams);
  remote_options.frames = absl::GetFlag(FLAGS_frames) && !flags.tls.enabled();  // plaintext only
  remote_options.credentials = moe::ChannelCredentials(flags.tls);
  const int route_ms = absl::GetFlag(FLAGS_route_deadline_ms);
  const int forward_ms = absl::GetFlag(FLAGS_forward_deadline_ms);
  if (route_ms <= 0 || forward_ms <= 0) {
    return log.Error("flags",
                     {{"error", "--route_deadline_ms, --forward_deadline_ms: must be > 0"}}),
           1;
  }
  if (absl::GetFlag(FLAGS_speculative_forward)) {
    absl::StatusOr<std::vector<torch::Tensor>> gates = moe::GateWeights(ckpt->config, ckpt->state);
    if (!gates.ok()) return log.Error("model", {{"error", gates.status().ToString()}}), 1;
    remote_options.gates = *std::move(gates);
  }
  remote_options.route_deadline = absl::Milliseconds(route_ms);
  remote_options.forward_deadline = absl::Milliseconds(forward_ms);
  // The event stream shows every placement change the executor sees in a Route answer.
  const int max_requests = absl::GetFlag(FLAGS_max_requests);
  const int max_watchers = absl::GetFlag(FLAGS_max_watchers);
  if (max_requests < 1 || max_watchers < 1) {
    return log.Error("flags", {{"error", "--max_requests, --max_watchers: must be >= 1"}}), 1;
  }
  moe::EventHub hub(ckpt->config, host.registry(), max_watchers);
  auto router =
      moe::v1::Router::NewStub(moe::Endpoint(cluster->router_address, remote_options.credentials)
                                   .Dial(moe::InternalChannelArguments()));
  moe::PlacementWatcher watcher(router.get(), &hub, &log);
  remote_options.on_new_epoch = [&watcher](uint64_t epoch) { watcher.OnEpoch(epoch); };
  moe::RemoteMoeExecutor executor(ckpt->config, *cluster, remote_options, host.registry(), &log);
  prometheus::Histogram& batch_sizes =
      prometheus::BuildHistogram()
          .Name("moe_decode_batch_size")
          .Help("Sequences in each decode step")
          .Register(host.registry())
          .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128});
  moe::EngineOptions engine_options;
  engine_options.max_batch = absl::GetFlag(FLAGS_max_batch);
  engine_options.on_decode_step = [&batch_sizes](int b) { batch_sizes.Observe(b); };
  engine_options.max_micro_batches = absl::GetFlag(FLAGS_micro_batches);
  engine_options.micro_batch_rows = absl::GetFlag(FLAGS_micro_batch_rows);
  engine_options.lane_rows = absl::GetFlag(FLAGS_lane_rows);
  const int lanes = absl::GetFlag(FLAGS_lanes);
  moe::EngineLanes engine(&*model, &executor, engine_options, lanes);
  moe::OrchestratorService service({ckpt->config, tokenizer->get(), &engine, &hub, router.get(),
                                    ckpt->profiles_json, &log, max_requests},
                                   host.registry());
  ckpt->state.clear();
  host.AddService(&service, moe::v1::Orchestrator::service_full_name());
  if (absl::Status s = host.Start(); !s.ok())
    return log.Error("start", {{"error", s.ToString()}}), 1;
  engine.Start();
  moe::OpenAiApi openai(&service.generations(), ckpt->config, ckpt->config.name);
  std::unique_ptr<moe::HttpServer> http;
  if (const std::string http_listen = absl::GetFlag(FLAGS_http_listen); !http_listen.empty()) {
    moe::HttpServerOptions http_options;
    http_options.max_connections = absl::GetFlag(FLAGS_http_max_connections);
    http_options.max_body_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_http_max_body_bytes));
    http_options.error_body = &moe::OpenAiApi::ServerErrorBody;
    if (http_options.max_connections < 1 || absl::GetFlag(FLAGS_http_max_body_bytes) < 1) {
      return log.Error("flags",
                       {{"error", "--http_max_connections, --http_max_body_bytes: must be >= 1"}}),
             1;
    }
    absl::StatusOr<std::unique_ptr<moe::HttpServer>> started =
        moe::HttpServer::Start(http_listen, "--http_listen", http_options,
                               [&openai](const moe::HttpRequest& req, moe::HttpResponse& resp) {
                                 openai.Handle(req, resp);
                               });
    if (!started.ok()) return log.Error("start", {{"error", started.status().ToString()}}), 1;
    http = *std::move(started);
  }
  host.SetServing(true);
  log.Info("serving", {{"listen", host.address()},
                       {"metrics", host.metrics_address()},
                       {"port", absl::StrCat(host.port())},
                       {"http_port", http ? absl::StrCat(http->port()) : "off"},
                       {"model", moe::ModelId(ckpt->config)},
                       {"router", cluster->router_address}});
  host.WaitForShutdownSignal();
  log.Info("shutting_down");
  host.Shutdown(absl::Seconds(10));
  http.reset();  // its open requests see their clients gone and cancel
  engine.Stop(/*drain=*/false);
  return 0;
}
