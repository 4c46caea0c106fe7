#include "services/router/placement_controller.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "services/common/deadline.h"
#include "services/common/host_port.h"
#include "services/common/server.h"
#include "services/common/status.h"
#include "services/common/tls.h"

namespace moe {
namespace {

using KeyList = std::vector<std::pair<int, int>>;  // (layer, key)

bool Contains(const std::vector<int>& v, int x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

PlacementController::PlacementController(const ModelConfig& config, PlacementTable* table,
                                         ReplicaSelector* replicas, LoadMeter* meter,
                                         const ControllerOptions& options,
                                         prometheus::Registry& registry, const Logger* logger)
    : config_(config),
      table_(table),
      replicas_(replicas),
      meter_(meter),
      options_(options),
      logger_(logger) {
  healthy_family_ = &prometheus::BuildGauge()
                         .Name("moe_pool_healthy")
                         .Help("1 if the router sees the expert pool as healthy")
                         .Register(registry);
  epoch_gauge_ = &prometheus::BuildGauge()
                      .Name("moe_placement_epoch")
                      .Help("The router's placement epoch: grows with every placement change")
                      .Register(registry)
                      .Add({});
  rebalances_ = &prometheus::BuildCounter()
                     .Name("moe_rebalances_total")
                     .Help("Rebalancer runs by outcome: changed, unchanged, failed")
                     .Register(registry);
  for (const char* outcome : {"changed", "unchanged", "failed"}) {
    rebalances_->Add({{"outcome", outcome}});
  }
  replica_changes_ = &prometheus::BuildCounter()
                          .Name("moe_replica_changes_total")
                          .Help("Replicas the router added (load) or removed (drop)")
                          .Register(registry);
  replica_changes_->Add({{"kind", "load"}});
  replica_changes_->Add({{"kind", "drop"}});
  auto& balance = prometheus::BuildGauge()
                      .Name("moe_layer_balancedness")
                      .Help(
                          "Per layer: mean over usable pools of windowed tokens computed, "
                          "divided by the max (1 = even)")
                      .Register(registry);
  for (int l = 0; l < config.n_layers; ++l) {
    balancedness_.push_back(&balance.Add({{"layer", absl::StrCat(l)}}));
    balancedness_.back()->Set(1);
  }
  absl::MutexLock lock(&links_mu_);
  for (int i = 0; i < table_->pool_count(); ++i) Link(i);
  epoch_gauge_->Set(static_cast<double>(table_->epoch()));
}

PlacementController::~PlacementController() { Stop(); }

void PlacementController::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void PlacementController::Stop() {
  {
    absl::MutexLock lock(&queue_mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void PlacementController::Enqueue(std::function<void(bool)> task) {
  bool stopping;
  {
    absl::MutexLock lock(&queue_mu_);
    stopping = stopping_ || !thread_.joinable();
    if (!stopping) queue_.push_back(std::move(task));
  }
  if (stopping) task(true);
}

bool PlacementController::Sleep(absl::Duration d) {
  absl::MutexLock lock(&queue_mu_);
  queue_mu_.AwaitWithTimeout(absl::Condition(&stopping_), d);
  return !stopping_;
}

void PlacementController::Loop() {
  absl::Time next_health = absl::Now();
  const bool periodic = options_.rebalance_interval > absl::ZeroDuration();
  absl::Time next_rebalance =
      periodic ? absl::Now() + options_.rebalance_interval : absl::InfiniteFuture();
  for (;;) {
    std::function<void(bool)> task;
    {
      absl::MutexLock lock(&queue_mu_);
      queue_mu_.AwaitWithDeadline(absl::Condition(
                                      +[](PlacementController* c) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                        return c->stopping_ || !c->queue_.empty();
                                      },
                                      this),
                                  std::min(next_health, next_rebalance));
      if (stopping_) break;
      if (!queue_.empty()) {
        task = std::move(queue_.front());
        queue_.pop_front();
      }
    }
    if (task) {
      task(false);
      continue;
    }
    if (absl::Now() >= next_health) {
      CheckHealth();
      next_health = absl::Now() + options_.health_interval;
    }
    if (absl::Now() >= next_rebalance) {
      absl::StatusOr<moe::v1::RebalanceResponse> r = DoRebalance("periodic");
      if (!r.ok()) logger_->Warn("rebalance_failed", {{"error", r.status().ToString()}});
      next_rebalance = absl::Now() + options_.rebalance_interval;
    }
  }
  std::deque<std::function<void(bool)>> left;
  {
    absl::MutexLock lock(&queue_mu_);
    left.swap(queue_);
  }
  for (auto& t : left) t(true);
}

PlacementController::PoolLink& PlacementController::Link(int index) {
  const PoolEntry entry = table_->pool(index);
  PoolLink& link = links_[index];
  if (link.health == nullptr || link.address != entry.address) {
    // Its own subchannel, so that a link made anew (after a failed check) connects afresh.
    grpc::ChannelArguments args = InternalChannelArguments();
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto channel = Endpoint(entry.address, options_.credentials).Dial(args);
    link.address = entry.address;
    link.health = grpc::health::v1::Health::NewStub(channel);
    link.pool = moe::v1::ExpertPool::NewStub(channel);
    link.described = false;
  }
  if (link.healthy_gauge == nullptr) {
    link.healthy_gauge = &healthy_family_->Add({{"pool", entry.name}});
    link.healthy_gauge->Set(replicas_->healthy(index) ? 1 : 0);
  }
  return link;
}

moe::v1::ExpertPool::Stub* PlacementController::PoolStub(int index) {
  absl::MutexLock lock(&links_mu_);
  return Link(index).pool.get();
}

void PlacementController::SetHealthy(int pool, bool healthy, const std::string& why) {
  const std::string name = table_->pool(pool).name;
  if (replicas_->SetHealthy(pool, healthy)) {
    if (healthy) {
      logger_->Info("pool_healthy", {{"pool", name}});
    } else {
      logger_->Warn("pool_unhealthy", {{"pool", name}, {"why", why}});
    }
  }
  absl::MutexLock lock(&links_mu_);
  PoolLink& link = Link(pool);
  link.healthy_gauge->Set(healthy ? 1 : 0);
  if (!healthy) link.described = false;  // a pool that comes back is described (and healed) anew
}

absl::Status PlacementController::ReportFailure(const std::string& pool, const std::string& why) {
  absl::StatusOr<int> index = table_->FindPool(pool);
  if (!index.ok()) return index.status();
  SetHealthy(*index, false, why);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> PlacementController::Register(const moe::v1::RegisterPoolRequest& req,
                                                       const std::string& caller_host) {
  if (req.name().empty()) return absl::InvalidArgumentError("name: required");
  if (req.address().empty()) return absl::InvalidArgumentError("address: required HOST:PORT");
  // The router dials this address: a listen-everywhere one would make it dial itself.
  if (absl::Status s = CheckDialable(req.address(), "address"); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(s.message(), " (expert pool: --advertise)"));
  }
  if (!caller_host.empty() && !IsLoopbackHost(caller_host) &&
      IsLoopbackHost(ParseHostPort(req.address(), "address")->host)) {
    return absl::InvalidArgumentError(
        absl::StrCat("address: ", req.address(), " is a loopback address, but pool ", req.name(),
                     " called from ", caller_host,
                     ": the router cannot dial it there (expert pool: "
                     "--advertise=HOST:PORT with its own host's address)"));
  }
  if (req.expert_slots() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("expert_slots: must be >= 0, got ", req.expert_slots()));
  }
  const std::string mine = ModelId(config_);
  if (req.model_id() != mine) {
    return absl::InvalidArgumentError(absl::StrCat("model_id: pool ", req.name(), " serves model ",
                                                   req.model_id(), ", this router serves ", mine));
  }
  const int index = table_->UpsertPool(
      {req.name(), req.address(), req.device(), req.expert_slots(), /*draining=*/false});
  replicas_->Resize(table_->pool_count());
  {
    absl::MutexLock lock(&links_mu_);
    Link(index).described = false;
  }
  epoch_gauge_->Set(static_cast<double>(table_->epoch()));
  logger_->Info("pool_registered", {{"pool", req.name()},
                                    {"address", req.address()},
                                    {"expert_slots", absl::StrCat(req.expert_slots())}});
  return table_->epoch();
}

void PlacementController::CheckHealth() {
  const int n = table_->pool_count();
  std::vector<std::string> usable_again;
  std::vector<int> dead;
  for (int i = 0; i < n; ++i) {
    if (table_->pool(i).removed) continue;
    if (CheckPool(i)) usable_again.push_back(table_->pool(i).name);
    absl::MutexLock lock(&links_mu_);
    if (absl::Now() - links_[i].failing_since > options_.dead_pool_removal) dead.push_back(i);
  }
  for (int i : dead) RemoveDeadPool(i);
  // A pool that joined (or came back), or one that left for good, may be what lets experts that
  // no pool hosts be placed: then place them now rather than at the next periodic rebalance.
  if ((!usable_again.empty() || !dead.empty()) && Incomplete()) {
    absl::StatusOr<moe::v1::RebalanceResponse> r =
        DoRebalance(usable_again.empty() ? "experts without a pool"
                                         : absl::StrCat("pool ", absl::StrJoin(usable_again, ", "),
                                                        " usable; experts without a pool"));
    if (!r.ok()) logger_->Warn("rebalance_failed", {{"error", r.status().ToString()}});
  }
  const std::vector<PlannerPool> pools = PlannerPools();
  for (int l = 0; l < config_.n_layers; ++l) {
    balancedness_[l]->Set(MeanOverMax(pools, meter_->PoolLoads(l, n)));
  }
  epoch_gauge_->Set(static_cast<double>(table_->epoch()));
}

void PlacementController::RemoveDeadPool(int index) {
  const PoolEntry entry = table_->pool(index);
  table_->RemovePool(index);
  {
    absl::MutexLock lock(&links_mu_);
    PoolLink& link = links_[index];
    if (link.healthy_gauge != nullptr) healthy_family_->Remove(link.healthy_gauge);
    links_.erase(index);
  }
  epoch_gauge_->Set(static_cast<double>(table_->epoch()));
  logger_->Warn("pool_removed",
                {{"pool", entry.name},
                 {"address", entry.address},
                 {"why", absl::StrCat("failed its health checks for more than ",
                                      absl::FormatDuration(options_.dead_pool_removal))}});
}

bool PlacementController::Incomplete() const {
  const std::shared_ptr<const RoutingView> view = table_->view();
  for (const auto& layer : view->hosts) {
    for (const std::vector<int>& hosts : layer) {
      if (hosts.empty()) return true;
    }
  }
  return false;
}

bool PlacementController::CheckPool(int index) {
  grpc::health::v1::Health::Stub* health;
  moe::v1::ExpertPool::Stub* pool;
  bool described;
  {
    absl::MutexLock lock(&links_mu_);
    PoolLink& link = Link(index);
    health = link.health.get();
    pool = link.pool.get();
    described = link.described;
  }
  grpc::ClientContext ctx;
  SetTimeout(ctx, options_.health_timeout);
  grpc::health::v1::HealthCheckResponse resp;
  const grpc::Status st = health->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp);
  bool ok = st.ok() && resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  std::string why = st.ok() ? "not serving" : st.error_message();
  if (!st.ok()) {
    // No answer: dial anew next time. A channel whose attempts found no listener (a pool still
    // starting, or restarting) can stay in a connect attempt for gRPC's 20 s connect timeout
    // after the pool is back. The stubs are only used on this thread.
    absl::MutexLock lock(&links_mu_);
    links_[index].health.reset();
    links_[index].pool.reset();
  }
  if (ok && !described) {
    // First answer since it was (or became) unknown: what it runs on and hosts. Healed before it
    // takes tokens again, so that no token goes to an expert it lost in a restart.
    grpc::ClientContext dctx;
    SetTimeout(dctx, options_.health_timeout);
    moe::v1::DescribeResponse d;
    const grpc::Status ds = pool->Describe(&dctx, moe::v1::DescribeRequest(), &d);
    if (!ds.ok()) {
      ok = false;
      why = absl::StrCat("Describe: ", ds.error_message());
    } else if (d.model_id() != ModelId(config_)) {
      ok = false;
      why = absl::StrCat("serves model ", d.model_id(), ", the router ", ModelId(config_));
    } else {
      // The cluster file says nothing of devices and slot budgets: the pool does.
      table_->SetDescribed(index, d.device(), d.expert_slots());
      Reconcile(index, d);
      absl::MutexLock lock(&links_mu_);
      Link(index).described = true;
    }
  }
  const bool was_healthy = replicas_->healthy(index);
  bool strike_out = true;
  {
    absl::MutexLock lock(&links_mu_);
    PoolLink& link = links_[index];
    if (ok) {
      link.failing_since = absl::InfiniteFuture();
      link.failed_checks = 0;
    } else {
      if (link.failing_since == absl::InfiniteFuture()) link.failing_since = absl::Now();
      strike_out = ++link.failed_checks >= options_.health_failures;
      // Not yet unhealthy, but it may be restarting: described (and healed) anew when it answers.
      link.described = false;
    }
  }
  if (ok || strike_out) SetHealthy(index, ok, why);
  // Described just now: it joined, or came back and was healed.
  return ok && (!described || !was_healthy);
}

void PlacementController::Reconcile(int index, const moe::v1::DescribeResponse& hosted) {
  std::set<std::pair<int, int>> has;
  for (const moe::v1::HostedExperts& h : hosted.hosted()) {
    for (int e : h.experts()) has.insert({h.layer(), e});
    for (int s : h.shared()) has.insert({h.layer(), config_.n_experts + s});
  }
  KeyList missing;
  for (const PlacementTable::Replica& r : table_->replicas_of_pool(index)) {
    if (r.state == ReplicaState::kDropping || has.count({r.layer, r.key}) > 0) continue;
    missing.push_back({r.layer, r.key});
  }
  if (missing.empty()) return;
  const std::string name = table_->pool(index).name;
  logger_->Warn("pool_heal", {{"pool", name}, {"missing_experts", absl::StrCat(missing.size())}});
  const absl::Status s = AddReplicas(index, missing);
  if (!s.ok()) {
    logger_->Warn("pool_heal_failed", {{"pool", name}, {"error", s.ToString()}});
    absl::StatusOr<moe::v1::RebalanceResponse> r = DoRebalance(absl::StrCat("heal ", name));
    if (!r.ok()) logger_->Warn("rebalance_failed", {{"error", r.status().ToString()}});
  }
}

std::vector<int> PlacementController::CurrentHosts(int layer, int key) const {
  std::vector<int> hosts = table_->Hosts(layer, key, ReplicaState::kReady);
  for (int p : table_->Hosts(layer, key, ReplicaState::kLoading)) hosts.push_back(p);
  return hosts;
}

absl::Status PlacementController::AddReplicas(int pool, const KeyList& keys) {
  std::vector<PlacementTable::Change> loading, ready, removed;
  for (const auto& [l, k] : keys) {
    loading.push_back({l, k, pool, ReplicaState::kLoading});
    ready.push_back({l, k, pool, ReplicaState::kReady});
    removed.push_back({l, k, pool, std::nullopt});
  }
  table_->Apply(loading);
  const absl::Status s = CallLoad(pool, keys);
  table_->Apply(s.ok() ? ready : removed);
  if (s.ok()) {
    replica_changes_->Add({{"kind", "load"}}).Increment(static_cast<double>(keys.size()));
  }
  return s;
}

std::vector<PlannerPool> PlacementController::PlannerPools() const {
  std::vector<PlannerPool> out;
  const std::vector<PoolEntry> pools = table_->pools();
  for (size_t i = 0; i < pools.size(); ++i) {
    out.push_back(
        {!pools[i].draining && !pools[i].removed && replicas_->healthy(static_cast<int>(i)),
         pools[i].expert_slots});
  }
  return out;
}

absl::StatusOr<moe::v1::RebalanceResponse> PlacementController::DoRebalance(
    const std::string& why) {
  moe::v1::RebalanceResponse resp;
  FillPlacement(resp.mutable_before());
  const std::vector<PlannerPool> pools = PlannerPools();
  Target target(config_.n_layers);
  std::vector<std::string> reasons;
  bool changed = false;
  for (int l = 0; l < config_.n_layers; ++l) {
    PlannerLayer layer;
    layer.load = meter_->KeyLoads(l);
    layer.current.resize(table_->n_keys());
    for (int k = 0; k < table_->n_keys(); ++k) layer.current[k] = CurrentHosts(l, k);
    absl::StatusOr<LayerPlan> plan =
        PlanLayer(pools, layer, options_.planner, [&](int k) { return table_->KeyName(l, k); });
    if (!plan.ok()) {
      rebalances_->Add({{"outcome", "failed"}}).Increment();
      return plan.status();
    }
    target[l] = plan->hosts;
    changed |= plan->adopted;
    resp.add_predicted_before(plan->before);
    resp.add_predicted_after(plan->after);
    reasons.push_back(absl::StrCat("layer ", l, ": ", plan->reason));
  }
  resp.set_reason(absl::StrJoin(reasons, "; "));
  if (changed) {
    logger_->Info("rebalance", {{"why", why}, {"plan", resp.reason()}});
    const absl::Status s = Apply(target);
    if (!s.ok()) {
      rebalances_->Add({{"outcome", "failed"}}).Increment();
      return s;
    }
  }
  rebalances_->Add({{"outcome", changed ? "changed" : "unchanged"}}).Increment();
  resp.set_changed(changed);
  epoch_gauge_->Set(static_cast<double>(table_->epoch()));
  FillPlacement(resp.mutable_after());
  return resp;
}

absl::Status PlacementController::Apply(const Target& target) {
  std::map<int, KeyList> adds, drops;
  for (int l = 0; l < config_.n_layers; ++l) {
    for (int k = 0; k < table_->n_keys(); ++k) {
      const std::vector<int> now = CurrentHosts(l, k);
      for (int p : target[l][k]) {
        if (!Contains(now, p)) adds[p].push_back({l, k});
      }
      for (int p : now) {
        if (!Contains(target[l][k], p)) drops[p].push_back({l, k});
      }
    }
  }
  absl::Status first_error;
  // 1. New replicas: loading, loaded by their pool, then ready.
  for (const auto& [pool, keys] : adds) first_error.Update(AddReplicas(pool, keys));
  // 2. Old replicas: out of routing first, dropped by their pool after the grace period. One goes
  // only while its expert keeps another ready replica on a healthy pool.
  std::map<int, KeyList> going;
  std::vector<PlacementTable::Change> dropping, removed;
  std::set<std::tuple<int, int, int>> scheduled;
  for (const auto& [pool, keys] : drops) {
    for (const auto& [l, k] : keys) {
      bool other = false;
      for (int p : table_->Hosts(l, k, ReplicaState::kReady)) {
        other |= p != pool && replicas_->healthy(p) && scheduled.count({l, k, p}) == 0;
      }
      if (!other) {
        first_error.Update(absl::FailedPreconditionError(
            absl::StrCat(table_->KeyName(l, k), ": kept on pool ", table_->pool(pool).name,
                         ", no other healthy replica is ready")));
        continue;
      }
      scheduled.insert({l, k, pool});
      going[pool].push_back({l, k});
      dropping.push_back({l, k, pool, ReplicaState::kDropping});
      removed.push_back({l, k, pool, std::nullopt});
    }
  }
  if (!dropping.empty()) {
    table_->Apply(dropping);
    if (!Sleep(options_.drop_grace)) return absl::UnavailableError("router: shutting down");
    for (const auto& [pool, keys] : going) {
      if (replicas_->healthy(pool)) {
        const absl::Status s = CallDrop(pool, keys);
        if (!s.ok())
          logger_->Warn("drop_failed",
                        {{"pool", table_->pool(pool).name}, {"error", s.ToString()}});
      }
      replica_changes_->Add({{"kind", "drop"}}).Increment(static_cast<double>(keys.size()));
    }
    table_->Apply(removed);
  }
  return first_error;
}

namespace {

moe::v1::ChangeExpertsRequest ChangeRequest(const KeyList& keys, int n_experts) {
  std::map<int, moe::v1::HostedExperts> by_layer;
  for (const auto& [l, k] : keys) {
    moe::v1::HostedExperts& h = by_layer[l];
    h.set_layer(l);
    if (k < n_experts) {
      h.add_experts(k);
    } else {
      h.add_shared(k - n_experts);
    }
  }
  moe::v1::ChangeExpertsRequest req;
  for (auto& [l, h] : by_layer) *req.add_experts() = std::move(h);
  return req;
}

}  // namespace

absl::Status PlacementController::CallLoad(int pool, const KeyList& keys) {
  return CallChange(pool, keys, /*load=*/true);
}

absl::Status PlacementController::CallDrop(int pool, const KeyList& keys) {
  return CallChange(pool, keys, /*load=*/false);
}

absl::Status PlacementController::CallChange(int pool, const KeyList& keys, bool load) {
  const std::string name = table_->pool(pool).name;
  const moe::v1::ChangeExpertsRequest req = ChangeRequest(keys, config_.n_experts);
  grpc::ClientContext ctx;
  SetTimeout(ctx, options_.change_timeout);
  moe::v1::DescribeResponse resp;
  moe::v1::ExpertPool::Stub* stub = PoolStub(pool);
  const grpc::Status st =
      load ? stub->LoadExperts(&ctx, req, &resp) : stub->DropExperts(&ctx, req, &resp);
  const char* method = load ? "LoadExperts" : "DropExperts";
  if (!st.ok()) {
    const absl::Status s = FromGrpcStatus(st);
    return absl::Status(s.code(), absl::StrCat("pool ", name, ": ", method, ": ", s.message()));
  }
  logger_->Info(load ? "experts_loaded" : "experts_dropped",
                {{"pool", name},
                 {"experts", absl::StrCat(keys.size())},
                 {"seconds", absl::StrCat(resp.change_seconds())}});
  return absl::OkStatus();
}

void PlacementController::Rebalance(
    std::function<void(absl::StatusOr<moe::v1::RebalanceResponse>)> done) {
  Enqueue([this, done = std::move(done)](bool stopping) {
    if (stopping) {
      done(absl::UnavailableError("router: shutting down"));
      return;
    }
    done(DoRebalance("asked"));
  });
}

void PlacementController::Drain(const std::string& pool,
                                std::function<void(absl::StatusOr<moe::v1::Placement>)> done) {
  Enqueue([this, pool, done = std::move(done)](bool stopping) {
    if (stopping) {
      done(absl::UnavailableError("router: shutting down"));
      return;
    }
    absl::StatusOr<int> index = table_->FindPool(pool);
    if (!index.ok()) {
      done(absl::InvalidArgumentError(absl::StrCat("pool: ", index.status().message())));
      return;
    }
    table_->SetDraining(*index, true);
    absl::StatusOr<moe::v1::RebalanceResponse> r = DoRebalance(absl::StrCat("drain ", pool));
    if (!r.ok()) {
      table_->SetDraining(*index, false);
      done(r.status());
      return;
    }
    if (!table_->replicas_of_pool(*index).empty()) {
      done(absl::FailedPreconditionError(absl::StrCat(
          "pool ", pool, ": still hosts experts after the drain (", r->reason(), ")")));
      return;
    }
    logger_->Info("pool_drained", {{"pool", pool}});
    done(r->after());
  });
}

void PlacementController::FillPlacement(moe::v1::Placement* out) const {
  out->set_epoch(table_->epoch());
  const std::vector<PoolEntry> pools = table_->pools();
  const std::vector<PlacementTable::Replica> replicas = table_->replicas();
  const int n = static_cast<int>(pools.size());
  std::vector<std::vector<double>> pool_loads;
  for (int l = 0; l < config_.n_layers; ++l) pool_loads.push_back(meter_->PoolLoads(l, n));
  std::vector<int> listed(n, -1);  // pool index -> position in out->pools (removed: -1)
  for (int i = 0; i < n; ++i) {
    const PoolEntry& p = pools[i];
    if (p.removed) continue;
    listed[i] = out->pools_size();
    moe::v1::PoolInfo* info = out->add_pools();
    info->set_name(p.name);
    info->set_address(p.address);
    info->set_device(p.device);
    info->set_healthy(replicas_->healthy(i));
    info->set_outstanding_tokens(static_cast<int64_t>(replicas_->load(i)));
    info->set_expert_slots(p.expert_slots);
    info->set_draining(p.draining);
    for (int l = 0; l < config_.n_layers; ++l) {
      moe::v1::HostedExperts* ready = info->add_hosts();
      moe::v1::HostedExperts* loading = info->add_loading();
      ready->set_layer(l);
      loading->set_layer(l);
      info->add_layer_tokens(pool_loads[l][i]);
    }
  }
  for (const PlacementTable::Replica& r : replicas) {
    if (r.state == ReplicaState::kDropping || listed[r.pool] < 0) continue;
    moe::v1::PoolInfo* info = out->mutable_pools(listed[r.pool]);
    moe::v1::HostedExperts* h = r.state == ReplicaState::kReady ? info->mutable_hosts(r.layer)
                                                                : info->mutable_loading(r.layer);
    const double tokens = meter_->KeyPoolLoads(r.layer, r.key, n)[r.pool];
    if (r.key < config_.n_experts) {
      h->add_experts(r.key);
      if (r.state == ReplicaState::kReady) h->add_expert_tokens(tokens);
    } else {
      h->add_shared(r.key - config_.n_experts);
      if (r.state == ReplicaState::kReady) h->add_shared_tokens(tokens);
    }
  }
  const std::vector<PlannerPool> usable = PlannerPools();
  for (int l = 0; l < config_.n_layers; ++l) {
    moe::v1::LayerBalance* layer = out->add_layers();
    layer->set_layer(l);
    const std::vector<double> keys = meter_->KeyLoads(l);
    for (int e = 0; e < config_.n_experts; ++e) layer->add_expert_tokens(keys[e]);
    layer->set_balancedness(MeanOverMax(usable, pool_loads[l]));
  }
}

}  // namespace moe
