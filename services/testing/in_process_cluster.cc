#include "services/testing/in_process_cluster.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "models/engine.h"
#include "models/inference.h"
#include "models/routing.h"
#include "models/test_util.h"
#include "services/common/deadline.h"
#include "services/common/status.h"
#include "services/orchestrator/event_hub.h"
#include "services/orchestrator/orchestrator_service.h"
#include "services/orchestrator/placement_watcher.h"

namespace moe::testing {
namespace {

std::string Loopback(int port) { return absl::StrCat("127.0.0.1:", port); }

}  // namespace

absl::StatusOr<std::unique_ptr<InProcessCluster>> InProcessCluster::Start(
    InProcessClusterOptions options) {
  std::unique_ptr<InProcessCluster> c(new InProcessCluster());
  if (options.start_empty) {
    options.pools.clear();
  } else if (options.pools.empty()) {
    std::vector<int> all;
    for (int e = 0; e < options.config.n_experts; ++e) all.push_back(e);
    options.pools = {{"pool-a", all, true}, {"pool-b", {2, 3}, false}};
  }
  c->options_ = options;
  const ModelConfig& config = c->options_.config;

  // The random model, written as a config file so that an embedded oracle loads the same one.
  absl::StatusOr<Checkpoint> ckpt = RandomCheckpoint(config, options.seed);
  if (!ckpt.ok()) return ckpt.status();
  c->checkpoint_ = *std::move(ckpt);
  c->dir_ = TempDir(absl::StrCat("cluster_", reinterpret_cast<uintptr_t>(c.get())));
  if (absl::Status s = SaveCheckpoint(c->dir_, config, c->checkpoint_.state, /*half=*/false);
      !s.ok()) {
    return s;
  }
  c->source_.random_init_config = absl::StrCat(c->dir_, "/", kConfigFile);
  c->source_.seed = options.seed;

  for (const InProcessPool& p : options.pools) {
    PoolSpec spec;
    absl::StatusOr<Pool> pool = c->StartPool(p, &spec);
    if (!pool.ok()) return pool.status();
    c->cluster_.pools.push_back(std::move(spec));
    c->pools_.push_back(*std::move(pool));
  }

  absl::StatusOr<std::vector<torch::Tensor>> gates = GateWeights(config, c->checkpoint_.state);
  if (!gates.ok()) return gates.status();
  c->router_host_ = std::make_unique<ServiceHost>(ServerOptions{"router", Loopback(0), ""});
  // The cluster's pool addresses are known now; the router's own is once it has started.
  c->router_ =
      std::make_unique<RouterService>(config, *std::move(gates), c->cluster_, options.router,
                                      c->router_host_->registry(), &c->logger_);
  c->router_host_->AddService(c->router_.get(), moe::v1::Router::service_full_name());
  if (absl::Status s = c->router_host_->Start(); !s.ok()) return s;
  c->router_host_->SetServing(true);
  c->cluster_.router_address = Loopback(c->router_host_->port());

  if (options.orchestrator) {
    c->orchestrator_host_ =
        std::make_unique<ServiceHost>(ServerOptions{"orchestrator", Loopback(0), ""});
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizerFor(c->source_, config);
    if (!tok.ok()) return tok.status();
    c->tokenizer_ = *std::move(tok);
    absl::StatusOr<InferenceModel> model = InferenceModel::Create(config, c->checkpoint_.state);
    if (!model.ok()) return model.status();
    c->model_ = std::make_unique<InferenceModel>(*std::move(model));
    c->hub_ =
        std::make_unique<EventHub>(config, c->orchestrator_host_->registry(), options.max_watchers);
    c->router_stub_ = moe::v1::Router::NewStub(
        grpc::CreateChannel(c->cluster_.router_address, grpc::InsecureChannelCredentials()));
    c->watcher_ =
        std::make_unique<PlacementWatcher>(c->router_stub_.get(), c->hub_.get(), &c->logger_);
    RemoteExecutorOptions remote = options.remote;
    PlacementWatcher* watcher = c->watcher_.get();
    remote.on_new_epoch = [watcher](uint64_t epoch) { watcher->OnEpoch(epoch); };
    c->executor_ = std::make_unique<RemoteMoeExecutor>(
        config, c->cluster_, remote, c->orchestrator_host_->registry(), &c->logger_);
    EngineOptions engine_options;
    engine_options.max_batch = options.max_batch;
    c->engine_ = std::make_unique<EngineLanes>(c->model_.get(), c->executor_.get(), engine_options,
                                               options.lanes);
    c->orchestrator_ = std::make_unique<OrchestratorService>(
        OrchestratorDeps{config, c->tokenizer_.get(), c->engine_.get(), c->hub_.get(),
                         c->router_stub_.get(), "{}", &c->logger_, options.max_requests},
        c->orchestrator_host_->registry());
    c->orchestrator_host_->AddService(c->orchestrator_.get(),
                                      moe::v1::Orchestrator::service_full_name());
    if (absl::Status s = c->orchestrator_host_->Start(); !s.ok()) return s;
    c->engine_->Start();
    c->orchestrator_host_->SetServing(true);
  }
  return c;
}

absl::StatusOr<InProcessCluster::Pool> InProcessCluster::StartPool(const InProcessPool& p,
                                                                   PoolSpec* spec) {
  const ModelConfig& config = options_.config;
  spec->name = p.name;
  for (int l = 0; l < config.n_layers; ++l) {
    for (int e : p.experts) spec->routed.insert({l, e});
    for (int s = 0; p.shared && s < config.n_shared; ++s) spec->shared.insert({l, s});
  }
  absl::StatusOr<ExpertBank> bank = ExpertBank::Build(
      config, checkpoint_.state,
      [spec](int l, int e, bool shared) { return spec->Hosts(l, e, shared); }, torch::kCPU);
  if (!bank.ok()) return bank.status();
  Pool pool;
  pool.name = p.name;
  pool.host = std::make_unique<ServiceHost>(ServerOptions{"expert_pool", Loopback(0), ""});
  pool.service = std::make_unique<ExpertPoolService>(
      config, ExpertPoolOptions{p.name, "cpu", p.expert_slots}, checkpoint_.state, *std::move(bank),
      pool.host->registry());
  pool.host->AddService(pool.service.get(), moe::v1::ExpertPool::service_full_name());
  if (absl::Status s = pool.host->Start(); !s.ok()) return s;
  pool.host->SetServing(true);
  spec->address = Loopback(pool.host->port());
  return pool;
}

absl::StatusOr<int> InProcessCluster::JoinPool(const InProcessPool& p) {
  PoolSpec spec;
  absl::StatusOr<Pool> pool = StartPool(p, &spec);
  if (!pool.ok()) return pool.status();
  auto stub = moe::v1::Router::NewStub(
      grpc::CreateChannel(router_address(), grpc::InsecureChannelCredentials()));
  moe::v1::RegisterPoolRequest req;
  req.set_name(p.name);
  req.set_address(spec.address);
  req.set_device("cpu");
  req.set_expert_slots(p.expert_slots);
  req.set_model_id(ModelId(options_.config));
  moe::v1::RegisterPoolResponse resp;
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(10));
  if (grpc::Status st = stub->RegisterPool(&ctx, req, &resp); !st.ok()) {
    return FromGrpcStatus(st);
  }
  int index = -1;
  for (size_t i = 0; i < pools_.size(); ++i) {
    if (pools_[i].name == p.name) index = static_cast<int>(i);
  }
  if (index < 0) {
    pools_.push_back(*std::move(pool));
    cluster_.pools.push_back(spec);
    return static_cast<int>(pools_.size()) - 1;
  }
  StopPool(index);
  pools_[index] = *std::move(pool);
  cluster_.pools[index] = spec;
  return index;
}

InProcessCluster::~InProcessCluster() {
  // Front to back, as the processes would stop: nothing calls a server that is already gone.
  if (orchestrator_host_ != nullptr) orchestrator_host_->Shutdown(absl::Seconds(1));
  if (engine_ != nullptr) engine_->Stop(/*drain=*/false);
  orchestrator_.reset();
  engine_.reset();
  executor_.reset();
  watcher_.reset();
  hub_.reset();
  StopRouter();
  for (size_t i = 0; i < pools_.size(); ++i) StopPool(static_cast<int>(i));
  if (!dir_.empty()) std::filesystem::remove_all(dir_);
}

std::string InProcessCluster::router_address() const { return cluster_.router_address; }

std::string InProcessCluster::pool_address(int i) const { return cluster_.pools[i].address; }

std::string InProcessCluster::orchestrator_address() const {
  return Loopback(orchestrator_host_->port());
}

void InProcessCluster::StopPool(int i) {
  Pool& p = pools_[i];
  if (p.host == nullptr) return;
  // A pool that dies drops its streams; the router's health checks will see it gone.
  p.service->CloseStreams();
  p.host->Shutdown(absl::Seconds(1));
  p.host.reset();
}

void InProcessCluster::StopRouter() {
  if (router_host_ == nullptr) return;
  router_->CloseStreams();
  router_host_->Shutdown(absl::Seconds(1));
  router_host_.reset();
}

}  // namespace moe::testing
