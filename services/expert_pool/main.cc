// moe-expert-pool: hosts the experts the cluster file assigns to --pool, on --device.
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "models/checkpoint.h"
#include "models/embedded.h"
#include "services/common/flags.h"
#include "services/common/log.h"
#include "services/common/server.h"
#include "services/expert_pool/expert_pool_service.h"

ABSL_FLAG(std::string, pool, "", "this pool's name in the cluster file");
ABSL_FLAG(std::string, device, "cpu", "where experts run: cpu or cuda:N");

int main(int argc, char** argv) {
  moe::InitServiceProcess();
  absl::SetProgramUsageMessage("moe-expert-pool --pool=NAME --cluster=FILE --model=DIR");
  absl::ParseCommandLine(argc, argv);
  const moe::CommonFlags flags = moe::ReadCommonFlags();
  moe::Logger log(absl::StrCat("expert_pool/", absl::GetFlag(FLAGS_pool)));
  moe::SetIntraOpThreads(flags.threads);
  const std::string device_name = absl::GetFlag(FLAGS_device);
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(device_name);
    if (device.is_cuda() && !torch::cuda::is_available()) throw std::runtime_error("no CUDA");
  } catch (const std::exception& e) {
    log.Error("device", {{"error", absl::StrCat("--device=", device_name, ": ", e.what())}});
    return 1;
  }
  absl::StatusOr<moe::Checkpoint> ckpt = moe::LoadModel(flags.model);
  if (!ckpt.ok()) return log.Error("model", {{"error", ckpt.status().ToString()}}), 1;
  absl::StatusOr<moe::ClusterSpec> cluster = moe::LoadCluster(flags.cluster, ckpt->config);
  if (!cluster.ok()) return log.Error("cluster", {{"error", cluster.status().ToString()}}), 1;
  absl::StatusOr<int> index = cluster->FindPool(absl::GetFlag(FLAGS_pool));
  if (!index.ok()) return log.Error("pool", {{"error", index.status().ToString()}}), 1;
  const moe::PoolSpec pool = cluster->pools[*index];
  // Only the hosted experts' weights are kept; the rest of the checkpoint is dropped here.
  absl::StatusOr<moe::ExpertBank> bank = moe::ExpertBank::Build(
      ckpt->config, ckpt->state,
      [&pool](int l, int e, bool shared) { return pool.Hosts(l, e, shared); }, device);
  if (!bank.ok()) return log.Error("experts", {{"error", bank.status().ToString()}}), 1;
  ckpt->state.clear();
  moe::ServiceHost host({"expert_pool", flags.listen, flags.metrics_listen});
  moe::ExpertPoolService service(ckpt->config, pool, std::move(*bank), device.str(),
                                 host.registry());
  host.AddService(&service);
  if (absl::Status s = host.Start(); !s.ok())
    return log.Error("start", {{"error", s.ToString()}}), 1;
  host.SetServing(true);
  log.Info("serving", {{"port", absl::StrCat(host.port())},
                       {"device", device.str()},
                       {"routed_experts", absl::StrCat(pool.routed.size())},
                       {"shared_experts", absl::StrCat(pool.shared.size())}});
  host.WaitForShutdownSignal();
  log.Info("shutting_down");
  service.CloseStreams();
  host.Shutdown(absl::Seconds(10));
  return 0;
}
