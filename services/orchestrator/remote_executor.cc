#include "services/orchestrator/remote_executor.h"

#include <grpcpp/grpcpp.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "models/experts.h"
#include "services/common/deadline.h"
#include "services/common/server.h"
#include "services/common/status.h"
#include "services/common/stream_call.h"
#include "services/common/tensor_codec.h"

namespace moe {
namespace {

prometheus::Histogram::BucketBoundaries Buckets() {
  return {5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1};
}

}  // namespace

struct RemoteMoeExecutor::Link {
  using RouteCall = StreamCall<moe::v1::RouteRequest, moe::v1::RouteResponse>;
  using ForwardCall = StreamCall<moe::v1::ForwardRequest, moe::v1::ForwardResponse>;

  explicit Link(RemoteMoeExecutor& owner) {
    moe::v1::Router::Stub* router = owner.router_.get();
    route = std::make_unique<RouteCall>(
        [router](grpc::ClientContext* ctx, grpc::CompletionQueue* q) {
          return router->PrepareAsyncRouteStream(ctx, q);
        },
        &cq);
  }

  ~Link() {
    std::vector<StreamOpTarget*> all = {route.get()};
    for (auto& [address, f] : forward) all.push_back(f.call.get());
    CloseStreamCalls(cq, all);
  }

  // The stream to a pool, opened on first use.
  ForwardCall* Forward(const std::shared_ptr<PoolChannel>& pool) {
    Pool& p = forward[pool->address];
    if (p.call == nullptr) {
      p.channel = pool;
      moe::v1::ExpertPool::Stub* stub = pool->stub.get();
      p.call = std::make_unique<ForwardCall>(
          [stub](grpc::ClientContext* ctx, grpc::CompletionQueue* q) {
            return stub->PrepareAsyncForwardStream(ctx, q);
          },
          &cq);
    }
    return p.call.get();
  }

  // A newer placement: close the streams to pools it no longer names.
  void Forget(uint64_t new_epoch, const google::protobuf::RepeatedPtrField<std::string>& live) {
    if (new_epoch <= epoch) return;
    epoch = new_epoch;
    std::vector<StreamOpTarget*> gone;
    std::vector<std::string> addresses;
    for (auto& [address, p] : forward) {
      if (std::find(live.begin(), live.end(), address) != live.end()) continue;
      gone.push_back(p.call.get());
      addresses.push_back(address);
    }
    if (gone.empty()) return;
    EndStreamCalls(cq, gone);
    for (const std::string& a : addresses) forward.erase(a);
  }

  struct Pool {
    std::shared_ptr<PoolChannel> channel;  // keeps the stub alive while the stream uses it
    std::unique_ptr<ForwardCall> call;
  };
  grpc::CompletionQueue cq;  // declared first: destroyed after the calls that use it
  std::unique_ptr<RouteCall> route;
  std::map<std::string, Pool> forward;  // by pool address
  uint64_t epoch = 0;                   // the newest placement epoch this link has seen
};

RemoteMoeExecutor::~RemoteMoeExecutor() = default;

std::unique_ptr<RemoteMoeExecutor::Link> RemoteMoeExecutor::AcquireLink() {
  {
    absl::MutexLock lock(&links_mu_);
    if (!idle_links_.empty()) {
      std::unique_ptr<Link> link = std::move(idle_links_.back());
      idle_links_.pop_back();
      return link;
    }
  }
  return std::make_unique<Link>(*this);
}

void RemoteMoeExecutor::ReleaseLink(std::unique_ptr<Link> link) {
  absl::MutexLock lock(&links_mu_);
  idle_links_.push_back(std::move(link));
}

RemoteMoeExecutor::RemoteMoeExecutor(const ModelConfig& config, const ClusterSpec& cluster,
                                     const RemoteExecutorOptions& options,
                                     prometheus::Registry& registry, const Logger* logger)
    : config_(config), options_(options), logger_(logger) {
  router_ = moe::v1::Router::NewStub(
      Endpoint(cluster.router_address, options.credentials).Dial(InternalChannelArguments()));
  forward_family_ =
      &prometheus::BuildHistogram()
           .Name("moe_forward_call_duration_seconds")
           .Help(
               "Forward messages (or calls) to each pool, client side: one per pool per layer step")
           .Register(registry);
  route_seconds_ =
      &prometheus::BuildHistogram()
           .Name("moe_route_call_duration_seconds")
           .Help("Route messages (or calls) to the router, client side: one per layer step")
           .Register(registry)
           .Add({}, Buckets());
}

std::shared_ptr<RemoteMoeExecutor::PoolChannel> RemoteMoeExecutor::Channel(
    const std::string& name, const std::string& address) {
  absl::MutexLock lock(&channels_mu_);
  std::shared_ptr<PoolChannel>& c = channels_[address];
  if (c == nullptr || c->name != name) {
    c = std::make_shared<PoolChannel>();
    c->name = name;
    c->address = address;
    c->stub = moe::v1::ExpertPool::NewStub(
        Endpoint(address, options_.credentials).Dial(InternalChannelArguments()));
    c->seconds = &forward_family_->Add({{"pool", name}}, Buckets());
  }
  return c;
}

absl::StatusOr<MoeLayerOutput> RemoteMoeExecutor::Forward(int layer, const torch::Tensor& x,
                                                          absl::Span<const uint64_t> token_keys,
                                                          bool want_probs) {
  std::unique_ptr<Link> link = AcquireLink();
  absl::Cleanup release = [this, &link] { ReleaseLink(std::move(link)); };
  absl::Status last;
  for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
    Attempt outcome;
    absl::StatusOr<MoeLayerOutput> out = TryOnce(layer, x, token_keys, want_probs, *link, &outcome);
    if (out.ok() || (outcome.failed_pools.empty() && !outcome.moved)) return out;
    last = out.status();
    // Tell the router right away (its health checks would notice later), then re-route.
    for (const std::string& pool : outcome.failed_pools) {
      grpc::ClientContext ctx;
      SetTimeout(ctx, absl::Seconds(1));
      moe::v1::ReportPoolFailureRequest req;
      req.set_pool(pool);
      req.set_error(std::string(last.message()));
      moe::v1::ReportPoolFailureResponse resp;
      (void)router_->ReportPoolFailure(&ctx, req, &resp);
      logger_->Warn(
          "pool_failed",
          {{"pool", pool}, {"layer", absl::StrCat(layer)}, {"error", std::string(last.message())}});
    }
    // A moved expert: the router has (or is about to have) a newer placement; give the change a
    // moment before asking again.
    if (outcome.failed_pools.empty()) absl::SleepFor(absl::Milliseconds(5 * (attempt + 1)));
  }
  return last;
}

grpc::Status RemoteMoeExecutor::CallRoute(Link& link, const moe::v1::RouteRequest& req,
                                          moe::v1::RouteResponse* resp, absl::Time deadline) {
  if (!options_.streams) {
    grpc::ClientContext ctx;
    SetDeadline(ctx, deadline);
    return router_->Route(&ctx, req, resp);
  }
  link.route->Send(&req, resp);
  WaitForStreamCalls(link.cq, {link.route.get()}, deadline);
  return link.route->status();
}

void RemoteMoeExecutor::CallPools(Link& link,
                                  const std::vector<std::shared_ptr<PoolChannel>>& pools,
                                  const std::vector<int>& busy,
                                  const std::vector<moe::v1::ForwardRequest>& reqs,
                                  std::vector<moe::v1::ForwardResponse>& resps,
                                  std::vector<grpc::Status>& status) {
  const absl::Time sent = absl::Now();
  const absl::Time deadline = sent + options_.forward_deadline;
  if (options_.streams) {
    // All pools at once, then one wait on this (the engine's) thread.
    std::vector<StreamOpTarget*> calls;
    std::vector<Link::ForwardCall*> by_pool(reqs.size(), nullptr);
    for (int p : busy) {
      by_pool[p] = link.Forward(pools[p]);
      by_pool[p]->Send(&reqs[p], &resps[p]);
      calls.push_back(by_pool[p]);
    }
    WaitForStreamCalls(link.cq, calls, deadline);
    for (int p : busy) {
      status[p] = by_pool[p]->status();
      pools[p]->seconds->Observe(absl::ToDoubleSeconds(by_pool[p]->answered_at() - sent));
    }
    return;
  }
  // Unary calls, issued together on a completion queue that this thread drains itself.
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs(reqs.size());
  std::vector<std::unique_ptr<grpc::ClientAsyncResponseReader<moe::v1::ForwardResponse>>> calls(
      reqs.size());
  for (int p : busy) {
    ctxs[p] = std::make_unique<grpc::ClientContext>();
    SetDeadline(*ctxs[p], deadline);
    calls[p] = pools[p]->stub->AsyncForward(ctxs[p].get(), reqs[p], &cq);
    calls[p]->Finish(&resps[p], &status[p], reinterpret_cast<void*>(static_cast<intptr_t>(p)));
  }
  for (size_t done = 0; done < busy.size(); ++done) {
    void* tag = nullptr;
    bool ok = false;
    if (!cq.Next(&tag, &ok)) break;
    const int p = static_cast<int>(reinterpret_cast<intptr_t>(tag));
    pools[p]->seconds->Observe(absl::ToDoubleSeconds(absl::Now() - sent));
  }
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
}

absl::StatusOr<MoeLayerOutput> RemoteMoeExecutor::TryOnce(int layer, const torch::Tensor& x,
                                                          absl::Span<const uint64_t> token_keys,
                                                          bool want_probs, Link& link,
                                                          Attempt* attempt) {
  const absl::Time start = absl::Now();
  const int64_t n = x.size(0);
  moe::v1::RouteRequest route_req;
  route_req.set_layer(layer);
  EncodeTensor(x, route_req.mutable_hidden());
  for (uint64_t k : token_keys) route_req.add_token_keys(k);
  route_req.set_return_probs(want_probs);
  moe::v1::RouteResponse route;
  {
    const grpc::Status st = CallRoute(link, route_req, &route, start + options_.route_deadline);
    route_seconds_->Observe(absl::ToDoubleSeconds(absl::Now() - start));
    if (!st.ok()) {
      absl::Status s = FromGrpcStatus(st);
      return absl::Status(s.code(), absl::StrCat("router: ", s.message()));
    }
  }
  const int k = route.top_k();
  if (k <= 0 || route.expert_ids_size() != n * k || route.weights_size() != n * k ||
      route.pool_index_size() != n * k || route.shared_pool_index_size() != config_.n_shared ||
      route.pool_addresses_size() != route.pools_size()) {
    return absl::InternalError("router: malformed Route response");
  }
  link.Forget(route.placement_epoch(), route.pool_addresses());
  for (uint64_t seen = newest_epoch_.load(); route.placement_epoch() > seen;) {
    if (newest_epoch_.compare_exchange_weak(seen, route.placement_epoch())) {
      if (options_.on_new_epoch) options_.on_new_epoch(route.placement_epoch());
      break;
    }
  }
  torch::Tensor ids = torch::empty({n, k}, torch::kInt64);
  torch::Tensor weights = torch::empty({n, k}, torch::kFloat);
  for (int64_t i = 0; i < n * k; ++i) {
    ids.data_ptr<int64_t>()[i] = route.expert_ids(i);
    weights.data_ptr<float>()[i] = route.weights(i);
  }
  DispatchPlan plan = PlanDispatch(ids);

  // One request per pool with work: the layer's tokens once, then each expert's rows. Pools are
  // the response's: index i is route.pools(i) at route.pool_addresses(i).
  const size_t n_pools = route.pools_size();
  std::vector<moe::v1::ForwardRequest> reqs(n_pools);
  std::vector<std::vector<std::pair<int, int>>> slots(n_pools);  // (kind, index) per work item
  auto pool_of = [&](int index) -> absl::StatusOr<int> {
    if (index < 0 || index >= static_cast<int>(n_pools)) {
      return absl::InternalError("router: pool index out of range");
    }
    return index;
  };
  std::vector<int> group_pool(plan.experts.size());
  for (size_t g = 0; g < plan.experts.size(); ++g) {
    // Every slot of an expert has the same pool: take the first.
    const int first_row = plan.rows[g][0];
    int index = -1;
    for (int s = 0; s < k; ++s) {
      if (route.expert_ids(first_row * k + s) == plan.experts[g])
        index = route.pool_index(first_row * k + s);
    }
    absl::StatusOr<int> p = pool_of(index);
    if (!p.ok()) return p.status();
    group_pool[g] = *p;
    moe::v1::ExpertWork* w = reqs[*p].add_work();
    w->set_expert(static_cast<int32_t>(plan.experts[g]));
    w->mutable_rows()->Add(plan.rows[g].begin(), plan.rows[g].end());
    slots[*p].push_back({0, static_cast<int>(g)});
  }
  std::vector<int> shared_pool(config_.n_shared);
  for (int s = 0; s < config_.n_shared; ++s) {
    absl::StatusOr<int> p = pool_of(route.shared_pool_index(s));
    if (!p.ok()) return p.status();
    shared_pool[s] = *p;
    moe::v1::ExpertWork* w = reqs[*p].add_work();
    w->set_expert(s);
    w->set_shared(true);
    for (int64_t r = 0; r < n; ++r) w->add_rows(static_cast<int32_t>(r));
    slots[*p].push_back({1, s});
  }
  const moe::v1::Tensor& hidden = route_req.hidden();  // encoded once, for the router
  std::vector<int> busy;
  for (size_t p = 0; p < n_pools; ++p) {
    if (reqs[p].work_size() == 0) continue;
    reqs[p].set_layer(layer);
    *reqs[p].mutable_hidden() = hidden;
    busy.push_back(static_cast<int>(p));
  }
  std::vector<std::shared_ptr<PoolChannel>> pools(n_pools);
  for (int p : busy) pools[p] = Channel(route.pools(p), route.pool_addresses(p));
  std::vector<moe::v1::ForwardResponse> resps(n_pools);
  std::vector<grpc::Status> status(n_pools);
  CallPools(link, pools, busy, reqs, resps, status);

  std::vector<torch::Tensor> routed(plan.experts.size());
  std::vector<torch::Tensor> shared(config_.n_shared);
  absl::Status first_error;
  for (int p : busy) {
    const std::string& name = route.pools(p);
    if (!status[p].ok()) {
      const grpc::StatusCode code = status[p].error_code();
      // Transport failures mean the pool is gone or stuck: worth a replica. An expert it no
      // longer hosts means the placement moved: worth asking the router again. Others are bugs.
      if (code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
          code == grpc::StatusCode::CANCELLED || code == grpc::StatusCode::UNKNOWN) {
        attempt->failed_pools.push_back(name);
      } else if (code == grpc::StatusCode::FAILED_PRECONDITION) {
        attempt->moved = true;
      }
      const auto& work = reqs[p].work(0);
      first_error.Update(absl::UnavailableError(
          absl::StrCat("layer ", layer, work.shared() ? " shared expert " : " expert ",
                       work.shared() ? work.expert() : work.expert() / config_.granularity,
                       ": pool ", name, " failed: ", status[p].error_message())));
      continue;
    }
    int64_t total = 0;
    for (const auto& w : reqs[p].work()) total += w.rows_size();
    absl::StatusOr<torch::Tensor> out =
        DecodeTensor(resps[p].output(), absl::StrCat("pool ", name, " output"),
                     {{total, config_.d_model}, false});
    if (!out.ok()) {
      first_error.Update(absl::InternalError(out.status().message()));
      continue;
    }
    int64_t offset = 0;
    for (size_t i = 0; i < slots[p].size(); ++i) {
      const int64_t rows = reqs[p].work(static_cast<int>(i)).rows_size();
      torch::Tensor part = out->narrow(0, offset, rows);
      offset += rows;
      if (slots[p][i].first == 0) {
        routed[slots[p][i].second] = part;
      } else {
        shared[slots[p][i].second] = part;
      }
    }
  }
  if (!first_error.ok()) return first_error;

  MoeLayerOutput result;
  result.output = CombineExpertOutputs(routed, plan, weights, config_.d_model);
  for (int s = 0; s < config_.n_shared; ++s) result.output = result.output + shared[s];
  result.top_k = k;
  result.expert_ids.assign(route.expert_ids().begin(), route.expert_ids().end());
  result.weights.assign(route.weights().begin(), route.weights().end());
  result.pool_index.assign(route.pool_index().begin(), route.pool_index().end());
  result.pools.assign(route.pools().begin(), route.pools().end());
  result.shared_pool_index.assign(route.shared_pool_index().begin(),
                                  route.shared_pool_index().end());
  if (want_probs && route.has_probs()) {
    absl::StatusOr<torch::Tensor> probs = DecodeTensor(route.probs(), "probs", {{n, -1}, false});
    if (probs.ok()) result.probs = ToFloatVector(*probs);
  }
  result.dropped = route.dropped_tokens();
  result.latency_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
  return result;
}

}  // namespace moe
