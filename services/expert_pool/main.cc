// moe-expert-pool: hosts the experts the cluster file assigns to --pool on --device, or, with
// --join, announces itself to the router and hosts what the router gives it.
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "models/checkpoint.h"
#include "models/embedded.h"
#include "models/usage.h"
#include "moe/v1/router.grpc.pb.h"
#include "services/common/deadline.h"
#include "services/common/flags.h"
#include "services/common/frame_service.h"
#include "services/common/host_port.h"
#include "services/common/log.h"
#include "services/common/placement.h"
#include "services/common/server.h"
#include "services/common/status.h"
#include "services/expert_pool/expert_pool_service.h"

ABSL_FLAG(std::string, pool, "", "this pool's name (its entry in the cluster file, if any)");
ABSL_FLAG(std::string, device, "cpu", "where experts run: cpu or cuda:N");
ABSL_FLAG(int, expert_slots, 0,
          "experts (routed and shared) this pool may host per layer; 0 = no limit");
ABSL_FLAG(std::string, join, "",
          "router address HOST:PORT: announce this pool to it (RegisterPool) and take the experts "
          "it assigns; the cluster file is then optional");
ABSL_FLAG(std::string, advertise, "",
          "with --join: the address others dial for this pool (default: --listen)");

namespace {

// The checkpoint's expert tensors: what later LoadExperts calls load from.
std::map<std::string, torch::Tensor> ExpertTensors(
    const std::map<std::string, torch::Tensor>& all) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, t] : all) {
    if (absl::StrContains(name, ".moe.experts.") || absl::StrContains(name, ".moe.shared.")) {
      out[name] = t;
    }
  }
  return out;
}

// Announces the pool until the router answers; a refusal (another model) is final.
absl::Status Join(const moe::Endpoint& router, const moe::v1::RegisterPoolRequest& req,
                  const moe::Logger& log) {
  auto stub = moe::v1::Router::NewStub(router.Dial());
  for (int attempt = 0;; ++attempt) {
    grpc::ClientContext ctx;
    moe::SetTimeout(ctx, absl::Seconds(5));
    moe::v1::RegisterPoolResponse resp;
    const grpc::Status st = stub->RegisterPool(&ctx, req, &resp);
    if (st.ok()) {
      log.Info("joined", {{"router", router.address}, {"epoch", absl::StrCat(resp.epoch())}});
      return absl::OkStatus();
    }
    if (st.error_code() != grpc::StatusCode::UNAVAILABLE &&
        st.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return moe::FromGrpcStatus(st);
    }
    if (attempt % 10 == 0)
      log.Warn("join_retry", {{"router", router.address}, {"error", st.error_message()}});
    absl::SleepFor(absl::Milliseconds(500));
  }
}

}  // namespace

int main(int argc, char** argv) {
  moe::InitServiceProcess();
  moe::InitUsage("moe-expert-pool --pool=NAME (--cluster=FILE | --join=ROUTER) --model=DIR");
  absl::ParseCommandLine(argc, argv);
  const absl::StatusOr<moe::CommonFlags> parsed = moe::ReadCommonFlags();
  const std::string name = absl::GetFlag(FLAGS_pool);
  const std::string join = absl::GetFlag(FLAGS_join);
  moe::Logger log(absl::StrCat("expert_pool/", name));
  if (!parsed.ok()) return log.Error("flags", {{"error", parsed.status().ToString()}}), 1;
  const moe::CommonFlags& flags = *parsed;
  if (name.empty()) return log.Error("flags", {{"error", "--pool: required"}}), 1;
  // A joining pool tells the router where to dial it; a listen-everywhere address names no host.
  const absl::StatusOr<moe::HostPort> listen = moe::ParseHostPort(flags.listen, "--listen");
  if (!listen.ok()) return log.Error("flags", {{"error", listen.status().ToString()}}), 1;
  std::string advertise = absl::GetFlag(FLAGS_advertise);
  if (!advertise.empty()) {
    if (absl::Status s = moe::CheckDialable(advertise, "--advertise"); !s.ok()) {
      return log.Error("flags", {{"error", s.ToString()}}), 1;
    }
  } else if (!join.empty() && moe::IsWildcardHost(listen->host)) {
    return log.Error("flags",
                     {{"error", absl::StrCat("--advertise: required with --join when --listen=",
                                             flags.listen,
                                             " listens everywhere: give the address the "
                                             "router dials for this pool, e.g. "
                                             "pool-a:50061")}}),
           1;
  }
  // A router on another host that is told to dial 127.0.0.1 dials itself.
  if (!join.empty()) {
    const absl::StatusOr<moe::HostPort> router = moe::ParseHostPort(join, "--join");
    if (!router.ok()) return log.Error("flags", {{"error", router.status().ToString()}}), 1;
    std::string own_host = listen->host;
    std::string own_flag = absl::StrCat("--listen=", flags.listen);
    if (!advertise.empty()) {
      own_host = moe::ParseHostPort(advertise, "--advertise")->host;  // checked above
      own_flag = absl::StrCat("--advertise=", advertise);
    }
    if (moe::IsLoopbackHost(own_host) && !moe::IsLoopbackHost(router->host)) {
      return log.Error("flags",
                       {{"error",
                         absl::StrCat(own_flag, ": a loopback address, which the router at ", join,
                                      " cannot dial: give --advertise=HOST:PORT with "
                                      "this host's address (and --listen on it or on "
                                      "0.0.0.0)")}}),
             1;
    }
  }
  const int slots = absl::GetFlag(FLAGS_expert_slots);
  if (slots < 0) return log.Error("flags", {{"error", "--expert_slots: must be >= 0"}}), 1;
  moe::SetIntraOpThreads(flags.threads);
  const std::string device_name = absl::GetFlag(FLAGS_device);
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(device_name);
  } catch (const c10::Error& e) {
    // LibTorch's message without its C++ backtrace: "Invalid device string: 'gpu'".
    log.Error("device",
              {{"error", absl::StrCat("--device=", device_name, ": ", e.what_without_backtrace(),
                                      " (expected cpu or cuda:N)")}});
    return 1;
  }
  if (device.is_cuda() && !torch::cuda::is_available()) {
    log.Error(
        "device",
        {{"error", absl::StrCat("--device=", device_name, ": this LibTorch has no CUDA device")}});
    return 1;
  }
  if (flags.cluster.empty() && join.empty()) {
    return log.Error("flags", {{"error",
                                "--cluster or --join: give one (where the pool's experts "
                                "come from)"}}),
           1;
  }
  absl::StatusOr<moe::Checkpoint> ckpt = moe::LoadModel(flags.model);
  if (!ckpt.ok()) return log.Error("model", {{"error", ckpt.status().ToString()}}), 1;
  // What to host at start: the cluster file's entry; with --join, nothing unless it has one.
  moe::PoolSpec pool;
  pool.name = name;
  absl::StatusOr<moe::ClusterSpec> cluster =
      flags.cluster.empty() ? moe::ClusterSpec() : moe::LoadCluster(flags.cluster, ckpt->config);
  if (cluster.ok()) {
    absl::StatusOr<int> index = cluster->FindPool(name);
    if (index.ok()) {
      pool = cluster->pools[*index];
    } else if (join.empty()) {
      return log.Error("pool", {{"error", index.status().ToString()}}), 1;
    }
  } else if (join.empty()) {
    return log.Error("cluster", {{"error", cluster.status().ToString()}}), 1;
  }
  absl::StatusOr<moe::ExpertBank> bank = moe::ExpertBank::Build(
      ckpt->config, ckpt->state,
      [&pool](int l, int e, bool shared) { return pool.Hosts(l, e, shared); }, device);
  if (!bank.ok()) return log.Error("experts", {{"error", bank.status().ToString()}}), 1;
  if (slots > 0) {
    for (int l = 0; l < ckpt->config.n_layers; ++l) {
      int n = 0;
      for (int e = 0; e < ckpt->config.n_experts; ++e) n += pool.Hosts(l, e, false);
      for (int s = 0; s < ckpt->config.n_shared; ++s) n += pool.Hosts(l, s, true);
      if (n > slots) {
        return log.Error("experts",
                         {{"error", absl::StrCat("layer ", l, ": the cluster file gives ", n,
                                                 " experts, --expert_slots=", slots)}}),
               1;
      }
    }
  }
  // Only expert weights are kept (to load from later); the rest of the checkpoint goes here.
  std::map<std::string, torch::Tensor> experts = ExpertTensors(ckpt->state);
  ckpt->state.clear();
  moe::ServiceHost host(moe::ServerOptionsFor("expert_pool", flags));
  moe::ExpertPoolService service(ckpt->config, {name, device.str(), slots}, std::move(experts),
                                 std::move(*bank), host.registry());
  host.AddService(&service, moe::v1::ExpertPool::service_full_name());
  // Declared after the service, so destroyed first: its connections use the service's handler.
  absl::StatusOr<moe::ServiceFrames> frames =
      moe::StartServiceFrames(flags, "moe.v1.ExpertPool/Forward", service.frame_handler());
  if (!frames.ok()) return log.Error("flags", {{"error", frames.status().ToString()}}), 1;
  service.SetFrameEndpoint(frames->endpoint);
  if (absl::Status s = host.Start(); !s.ok())
    return log.Error("start", {{"error", s.ToString()}}), 1;
  host.SetServing(true);
  log.Info("serving", {{"listen", host.address()},
                       {"metrics", host.metrics_address()},
                       {"port", absl::StrCat(host.port())},
                       {"frames", frames->server ? frames->endpoint.address() : frames->why_off},
                       {"device", device.str()},
                       {"routed_experts", absl::StrCat(pool.routed.size())},
                       {"shared_experts", absl::StrCat(pool.shared.size())}});
  if (!join.empty()) {
    // Unless told otherwise, the listen host with the port the server got (--listen may ask for
    // any).
    if (advertise.empty()) advertise = absl::StrCat(listen->host, ":", host.port());
    moe::v1::RegisterPoolRequest req;
    req.set_name(name);
    req.set_address(advertise);
    req.set_device(device.str());
    req.set_expert_slots(slots);
    req.set_model_id(moe::ModelId(ckpt->config));
    if (absl::Status s = Join(moe::Endpoint(join, moe::ChannelCredentials(flags.tls)), req, log);
        !s.ok()) {
      log.Error("join", {{"router", join}, {"error", s.ToString()}});
      service.CloseStreams();
      if (frames->server) frames->server->Close();
      host.Shutdown(absl::Seconds(1));
      return 1;
    }
  }
  host.WaitForShutdownSignal();
  log.Info("shutting_down");
  service.CloseStreams();
  if (frames->server) frames->server->Close();
  host.Shutdown(absl::Seconds(10));
  return 0;
}
