// moe-router: serves the gates. Loads the checkpoint's gate weights and the cluster file, checks
// pool health, and answers Route/GetPolicy/SetPolicy/GetPlacement.
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "models/checkpoint.h"
#include "models/embedded.h"
#include "models/routing.h"
#include "services/common/flags.h"
#include "services/common/log.h"
#include "services/common/server.h"
#include "services/router/router_service.h"

int main(int argc, char** argv) {
  moe::InitServiceProcess();
  absl::SetProgramUsageMessage("moe-router --cluster=FILE --model=DIR --listen=HOST:PORT");
  absl::ParseCommandLine(argc, argv);
  const moe::CommonFlags flags = moe::ReadCommonFlags();
  moe::Logger log("router");
  moe::SetIntraOpThreads(flags.threads);
  absl::StatusOr<moe::Checkpoint> ckpt = moe::LoadModel(flags.model);
  if (!ckpt.ok()) return log.Error("model", {{"error", ckpt.status().ToString()}}), 1;
  absl::StatusOr<moe::ClusterSpec> cluster = moe::LoadCluster(flags.cluster, ckpt->config);
  if (!cluster.ok()) return log.Error("cluster", {{"error", cluster.status().ToString()}}), 1;
  absl::StatusOr<std::vector<torch::Tensor>> gates = moe::GateWeights(ckpt->config, ckpt->state);
  if (!gates.ok()) return log.Error("model", {{"error", gates.status().ToString()}}), 1;
  moe::ServiceHost host({"router", flags.listen, flags.metrics_listen});
  moe::RouterService service(ckpt->config, std::move(*gates), *cluster, moe::RouterOptions(),
                             host.registry(), &log);
  host.AddService(&service);
  if (absl::Status s = host.Start(); !s.ok())
    return log.Error("start", {{"error", s.ToString()}}), 1;
  service.StartHealthChecks();
  host.SetServing(true);
  log.Info("serving", {{"port", absl::StrCat(host.port())}, {"model", moe::ModelId(ckpt->config)}});
  host.WaitForShutdownSignal();
  log.Info("shutting_down");
  service.CloseStreams();
  host.Shutdown(absl::Seconds(10));
  return 0;
}
