// moe-router: serves the gates. Loads the checkpoint's gate weights and the cluster file, checks
// pool health, and answers Route/GetPolicy/SetPolicy/GetPlacement.
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "models/checkpoint.h"
#include "models/embedded.h"
#include "models/routing.h"
#include "models/usage.h"
#include "services/common/flags.h"
#include "services/common/frame_service.h"
#include "services/common/log.h"
#include "services/common/server.h"
#include "services/router/router_service.h"

ABSL_FLAG(double, rebalance_interval_s, 30,
          "run the rebalancer every this many seconds (0 = only when asked: moectl rebalance)");
ABSL_FLAG(double, load_window_s, 30, "half-life of the measured expert loads the rebalancer uses");
ABSL_FLAG(double, min_gain, 0.05,
          "rebalance only when the planned balancedness of a layer is this much higher");
ABSL_FLAG(int, drop_grace_ms, 1000,
          "between taking a replica out of routing and telling its pool to drop it");
ABSL_FLAG(int, health_interval_ms, 500, "between health checks of each pool");
ABSL_FLAG(int, health_timeout_ms, 1000,
          "a pool's health check that takes longer fails; --health_failures in a row make the "
          "pool unhealthy (no tokens) until one passes");
ABSL_FLAG(int, health_failures, 2,
          "failed health checks in a row before a pool counts as unhealthy (a failure the "
          "orchestrator reports counts at once)");
ABSL_FLAG(double, dead_pool_removal_s, 300,
          "remove a pool from the placement once it has failed its health checks this many "
          "seconds (its experts go to the others); it comes back by joining again. 0 = never");

int main(int argc, char** argv) {
  moe::InitServiceProcess();
  moe::InitUsage(
      "moe-router --listen=HOST:PORT --model=DIR [--cluster=FILE]\n"
      "  Without --cluster the placement starts empty: pools join with --join=ROUTER and the "
      "router\n  serves once every expert has a pool.");
  absl::ParseCommandLine(argc, argv);
  const absl::StatusOr<moe::CommonFlags> parsed = moe::ReadCommonFlags();
  moe::Logger log("router");
  if (!parsed.ok()) return log.Error("flags", {{"error", parsed.status().ToString()}}), 1;
  const moe::CommonFlags& flags = *parsed;
  moe::SetIntraOpThreads(flags.threads);
  absl::StatusOr<moe::Checkpoint> ckpt = moe::LoadModel(flags.model);
  if (!ckpt.ok()) return log.Error("model", {{"error", ckpt.status().ToString()}}), 1;
  // No cluster file: an empty starting placement, which pools fill by joining.
  absl::StatusOr<moe::ClusterSpec> cluster =
      flags.cluster.empty() ? moe::ClusterSpec() : moe::LoadCluster(flags.cluster, ckpt->config);
  if (!cluster.ok()) return log.Error("cluster", {{"error", cluster.status().ToString()}}), 1;
  absl::StatusOr<std::vector<torch::Tensor>> gates = moe::GateWeights(ckpt->config, ckpt->state);
  if (!gates.ok()) return log.Error("model", {{"error", gates.status().ToString()}}), 1;
  moe::ServiceHost host(moe::ServerOptionsFor("router", flags));
  moe::RouterOptions options;
  const double interval = absl::GetFlag(FLAGS_rebalance_interval_s);
  const double window = absl::GetFlag(FLAGS_load_window_s);
  const double min_gain = absl::GetFlag(FLAGS_min_gain);
  const int grace = absl::GetFlag(FLAGS_drop_grace_ms);
  if (!(interval >= 0))
    return log.Error("flags", {{"error", "--rebalance_interval_s: must be >= 0"}}), 1;
  if (!(window > 0)) return log.Error("flags", {{"error", "--load_window_s: must be > 0"}}), 1;
  if (!(min_gain >= 0 && min_gain <= 1)) {
    return log.Error("flags", {{"error", "--min_gain: must be in [0, 1]"}}), 1;
  }
  if (grace < 0) return log.Error("flags", {{"error", "--drop_grace_ms: must be >= 0"}}), 1;
  const double removal = absl::GetFlag(FLAGS_dead_pool_removal_s);
  if (!(removal >= 0))
    return log.Error("flags", {{"error", "--dead_pool_removal_s: must be >= 0"}}), 1;
  const int health_interval = absl::GetFlag(FLAGS_health_interval_ms);
  const int health_timeout = absl::GetFlag(FLAGS_health_timeout_ms);
  const int health_failures = absl::GetFlag(FLAGS_health_failures);
  if (health_interval < 1 || health_timeout < 1 || health_failures < 1) {
    return log.Error("flags", {{"error",
                                "--health_interval_ms, --health_timeout_ms, "
                                "--health_failures: must be >= 1"}}),
           1;
  }
  options.control.health_interval = absl::Milliseconds(health_interval);
  options.control.health_timeout = absl::Milliseconds(health_timeout);
  options.control.health_failures = health_failures;
  options.control.dead_pool_removal =
      removal > 0 ? absl::Seconds(removal) : absl::InfiniteDuration();
  options.control.rebalance_interval = absl::Seconds(interval);
  options.load_window = absl::Seconds(window);
  options.control.planner.min_gain = min_gain;
  options.control.drop_grace = absl::Milliseconds(grace);
  options.control.credentials = moe::ChannelCredentials(flags.tls);
  moe::RouterService service(ckpt->config, std::move(*gates), *cluster, options, host.registry(),
                             &log);
  host.AddService(&service, moe::v1::Router::service_full_name());
  // Declared after the service, so destroyed first: its connections use the service's handler.
  absl::StatusOr<moe::ServiceFrames> frames =
      moe::StartServiceFrames(flags, "moe.v1.Router/Route", service.frame_handler());
  if (!frames.ok()) return log.Error("flags", {{"error", frames.status().ToString()}}), 1;
  service.SetFrameEndpoint(frames->endpoint);
  if (absl::Status s = host.Start(); !s.ok())
    return log.Error("start", {{"error", s.ToString()}}), 1;
  service.StartHealthChecks();
  host.SetServing(true);
  log.Info("serving", {{"listen", host.address()},
                       {"metrics", host.metrics_address()},
                       {"port", absl::StrCat(host.port())},
                       {"frames", frames->server ? frames->endpoint.address() : frames->why_off},
                       {"pools", absl::StrCat(cluster->pools.size())},
                       {"model", moe::ModelId(ckpt->config)}});
  host.WaitForShutdownSignal();
  log.Info("shutting_down");
  service.CloseStreams();
  if (frames->server) frames->server->Close();
  host.Shutdown(absl::Seconds(10));
  return 0;
}
