#include "services/orchestrator/remote_executor.h"

#include <grpcpp/grpcpp.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "models/experts.h"
#include "models/routing.h"
#include "services/common/deadline.h"
#include "services/common/frame_call.h"
#include "services/common/server.h"
#include "services/common/status.h"
#include "services/common/stream_call.h"
#include "services/common/tensor_codec.h"

namespace moe {
namespace {

prometheus::Histogram::BucketBoundaries Buckets() {
  return {5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1};
}

// Where the service a stub reaches offers frames of `method` (frames.h), asked over gRPC:
// HOST:PORT, or why there are none (frames off there, an older build, unreachable).
template <typename Stub>
absl::StatusOr<std::string> LocateFrames(Stub& stub, const std::string& dialed,
                                         const std::string& method, absl::Duration limit) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, absl::Now() + limit);
  moe::v1::FrameEndpoint endpoint;
  if (const grpc::Status st = stub.GetFrameEndpoint(&ctx, {}, &endpoint); !st.ok()) {
    return FromGrpcStatus(st);
  }
  if (endpoint.address().empty()) return absl::UnavailableError("offers no frames");
  if (endpoint.method() != method) {
    return absl::FailedPreconditionError(
        absl::StrCat("offers frames of ", endpoint.method(), ", not ", method));
  }
  return FrameAddressFor(endpoint.address(), dialed);
}

}  // namespace

struct RemoteMoeExecutor::Link {
  using RouteCall = MessageCall<moe::v1::RouteRequest, moe::v1::RouteResponse>;
  using ForwardCall = MessageCall<moe::v1::ForwardRequest, moe::v1::ForwardResponse>;

  explicit Link(RemoteMoeExecutor& owner) : owner_(owner) {
    moe::v1::Router::Stub* router = owner.router_.get();
    route = Open<moe::v1::RouteRequest, moe::v1::RouteResponse>(
        *router, owner.router_address_, "router", "router", "moe.v1.Router/Route",
        [router](grpc::ClientContext* ctx, grpc::CompletionQueue* q) {
          return router->PrepareAsyncRouteStream(ctx, q);
        });
  }

  ~Link() {
    std::vector<StreamOpTarget*> all = {route.get()};
    for (auto& [address, f] : forward) all.push_back(f.call.get());
    CloseStreamCalls(cq, all);
  }

  // The call to a pool, opened on first use.
  ForwardCall* Forward(const std::shared_ptr<PoolChannel>& pool) {
    Pool& p = forward[pool->address];
    if (p.call == nullptr) {
      p.channel = pool;
      moe::v1::ExpertPool::Stub* stub = pool->stub.get();
      p.call = Open<moe::v1::ForwardRequest, moe::v1::ForwardResponse>(
          *stub, pool->address, pool->name, "pool", "moe.v1.ExpertPool/Forward",
          [stub](grpc::ClientContext* ctx, grpc::CompletionQueue* q) {
            return stub->PrepareAsyncForwardStream(ctx, q);
          });
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

  // Frames where the peer offers them and the options allow, else a gRPC stream.
  template <typename Req, typename Resp, typename Stub>
  std::unique_ptr<MessageCall<Req, Resp>> Open(Stub& stub, const std::string& address,
                                               const std::string& name, const std::string& kind,
                                               const std::string& method,
                                               typename StreamCall<Req, Resp>::Opener opener) {
    if (owner_.options_.frames && owner_.options_.streams) {
      // Asked once per peer address and shared by the links (a stuck peer stalls the link
      // asking); asked again when a connection breaks and cannot be reopened where it was.
      const absl::Duration limit = std::min(absl::Seconds(2), owner_.options_.forward_deadline);
      RemoteMoeExecutor* owner = &owner_;
      auto locate = [owner, &stub, address, method, limit]() -> absl::StatusOr<std::string> {
        absl::StatusOr<std::string> where = LocateFrames(stub, address, method, limit);
        absl::MutexLock lock(&owner->frames_mu_);
        if (where.ok()) {
          owner->frames_at_[address] = *where;
        } else {
          owner->frames_at_.erase(address);
        }
        return where;
      };
      absl::StatusOr<std::string> where = absl::NotFoundError("not asked yet");
      {
        absl::MutexLock lock(&owner_.frames_mu_);
        if (auto it = owner_.frames_at_.find(address); it != owner_.frames_at_.end()) {
          where = it->second;
        }
      }
      if (!where.ok()) where = locate();
      // Connected here, so that a port the network does not let through (a firewall, a
      // Service without the frames port) means gRPC for this peer, not failed messages.
      absl::StatusOr<std::unique_ptr<FrameConnection>> conn =
          where.ok() ? FrameConnection::Connect(*where, method, limit, limit) : where.status();
      if (conn.ok()) {
        owner_.links_opened_.at(kind + "/frames")->Increment();
        return std::make_unique<FrameCall<Req, Resp>>(name, method, *where, locate, limit,
                                                      *std::move(conn));
      }
      if (owner_.logger_ != nullptr) {
        owner_.logger_->Info(
            "no_frames", {{"peer", name}, {"address", address}, {"why", conn.status().ToString()}});
      }
    }
    owner_.links_opened_.at(kind + "/grpc")->Increment();
    return std::make_unique<StreamCall<Req, Resp>>(std::move(opener), &cq);
  }

  struct Pool {
    std::shared_ptr<PoolChannel> channel;  // keeps the stub alive while the call uses it
    std::unique_ptr<ForwardCall> call;
  };
  RemoteMoeExecutor& owner_;
  grpc::CompletionQueue cq;  // declared before the calls: destroyed after them
  std::unique_ptr<RouteCall> route;
  std::map<std::string, Pool> forward;  // by pool address
  uint64_t epoch = 0;                   // the newest placement epoch this link has seen
};

struct RemoteMoeExecutor::Call {
  int layer = 0;
  torch::Tensor x;  // [N, C]
  std::vector<uint64_t> keys;
  bool want_probs = false;
  absl::Time start;
  moe::v1::RouteRequest route_req;
  moe::v1::RouteResponse route;
  // Predicted work, per pool address, sent beside the Route message.
  struct Guess {
    std::shared_ptr<PoolChannel> pool;
    moe::v1::ForwardRequest req;
    moe::v1::ForwardResponse resp;
    Link::ForwardCall* call = nullptr;  // null once drained (status and time copied below)
    grpc::Status status;
    absl::Time answered_at;
  };
  std::map<std::string, Guess> guesses;
  absl::Time guessed_at;

  // Waits until the given guesses have their answer or their error (at `deadline` the rest are
  // cancelled), and keeps them.
  void WaitGuesses(Link& link, const std::vector<Guess*>& which, absl::Time deadline) {
    std::vector<StreamOpTarget*> pending;
    for (Guess* g : which) {
      if (g->call != nullptr) pending.push_back(g->call);
    }
    if (!pending.empty()) WaitForStreamCalls(link.cq, pending, deadline);
    for (Guess* g : which) {
      if (g->call == nullptr || g->call->Pending()) continue;
      g->status = g->call->status();
      g->answered_at = g->call->answered_at();
      g->call = nullptr;
    }
  }
  // Gives up on every guess still in flight (a pool that is slow or gone, whose answer is not
  // needed) and waits for gRPC to release it: the link's streams are then free for its next call.
  void CancelGuesses(Link& link) {
    std::vector<Guess*> all;
    for (auto& [address, g] : guesses) {
      if (g.call == nullptr) continue;
      g.call->Cancel();
      all.push_back(&g);
    }
    WaitGuesses(link, all, absl::InfiniteFuture());
  }
};

class RemoteMoeExecutor::Layer : public PendingMoeLayer {
 public:
  Layer(RemoteMoeExecutor* owner, std::unique_ptr<Link> link, std::unique_ptr<Call> call)
      : owner_(owner), link_(std::move(link)), call_(std::move(call)) {}
  ~Layer() override {
    if (link_ != nullptr) (void)Wait();
  }
  absl::StatusOr<MoeLayerOutput> Wait() override {
    absl::StatusOr<MoeLayerOutput> out = owner_->Complete(*call_, *link_);
    owner_->ReleaseLink(std::move(link_));
    return out;
  }

 private:
  RemoteMoeExecutor* const owner_;
  std::unique_ptr<Link> link_;
  std::unique_ptr<Call> call_;
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
    : config_(config),
      options_(options),
      logger_(logger),
      known_(config.n_layers),
      gates_(MakeGates(options.gates)) {
  router_address_ = cluster.router_address;
  router_ = moe::v1::Router::NewStub(
      Endpoint(cluster.router_address, options.credentials).Dial(InternalChannelArguments()));
  forward_family_ =
      &prometheus::BuildHistogram()
           .Name("moe_forward_call_duration_seconds")
           .Help(
               "Forward messages (or calls) to each pool, client side: one per pool per layer step")
           .Register(registry);
  auto& speculative = prometheus::BuildCounter()
                          .Name("moe_speculative_layers_total")
                          .Help(
                              "Layer calls with speculative Forward, by outcome: kept (every "
                              "predicted answer kept), resent (some work sent again), none")
                          .Register(registry);
  kept_ = &speculative.Add({{"outcome", "kept"}});
  resent_ = &speculative.Add({{"outcome", "resent"}});
  none_ = &speculative.Add({{"outcome", "none"}});
  auto& links = prometheus::BuildCounter()
                    .Name("moe_internal_links_total")
                    .Help(
                        "Message links set up to the router and the pools (one per peer and engine "
                        "lane part), by peer and transport: frames, or a gRPC stream where the "
                        "peer offers none")
                    .Register(registry);
  for (const char* peer : {"router", "pool"}) {
    for (const char* transport : {"frames", "grpc"}) {
      links_opened_[std::string(peer) + "/" + transport] =
          &links.Add({{"peer", peer}, {"transport", transport}});
    }
  }
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
  if (layer < 0 || layer >= config_.n_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer: must be in [0, ", config_.n_layers, "), got ", layer));
  }
  std::unique_ptr<Link> link = AcquireLink();
  absl::Cleanup release = [this, &link] { ReleaseLink(std::move(link)); };
  Call call;
  call.layer = layer;
  call.x = x;
  call.keys.assign(token_keys.begin(), token_keys.end());
  call.want_probs = want_probs;
  Send(call, *link, /*predict=*/true);
  return Complete(call, *link);
}

std::unique_ptr<PendingMoeLayer> RemoteMoeExecutor::Begin(int layer, torch::Tensor x,
                                                          std::vector<uint64_t> token_keys,
                                                          bool want_probs) {
  // Unary calls are made one at a time by the waiting thread: nothing to overlap. (Forward also
  // refuses a layer out of range.)
  if (!options_.streams || layer < 0 || layer >= config_.n_layers) {
    return MoeExecutor::Begin(layer, x, std::move(token_keys), want_probs);
  }
  std::unique_ptr<Link> link = AcquireLink();
  auto call = std::make_unique<Call>();
  call->layer = layer;
  call->x = std::move(x);
  call->keys = std::move(token_keys);
  call->want_probs = want_probs;
  Send(*call, *link, /*predict=*/true);
  return std::make_unique<Layer>(this, std::move(link), std::move(call));
}

absl::StatusOr<MoeLayerOutput> RemoteMoeExecutor::Complete(Call& call, Link& link) {
  for (int attempt = 0;; ++attempt) {
    Attempt outcome;
    absl::StatusOr<MoeLayerOutput> out = Finish(call, link, &outcome);
    if (out.ok() || (outcome.failed_pools.empty() && !outcome.moved)) return out;
    AfterFailure(call.layer, outcome, out.status(), attempt);
    if (attempt + 1 >= options_.max_attempts) return out;
    // After a failure the last answer is a poor guess (a pool just failed, or moved experts).
    Send(call, link, /*predict=*/false);
  }
}

void RemoteMoeExecutor::AfterFailure(int layer, const Attempt& outcome, const absl::Status& error,
                                     int attempt) {
  // Tell the router right away (its health checks would notice later), then re-route.
  for (const std::string& pool : outcome.failed_pools) {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(1));
    moe::v1::ReportPoolFailureRequest req;
    req.set_pool(pool);
    req.set_error(std::string(error.message()));
    moe::v1::ReportPoolFailureResponse resp;
    (void)router_->ReportPoolFailure(&ctx, req, &resp);
    logger_->Warn(
        "pool_failed",
        {{"pool", pool}, {"layer", absl::StrCat(layer)}, {"error", std::string(error.message())}});
  }
  // A moved expert: the router has (or is about to have) a newer placement; give the change a
  // moment before asking again.
  if (outcome.failed_pools.empty()) absl::SleepFor(absl::Milliseconds(5 * (attempt + 1)));
}

namespace {

// What a Route answer asks of the pools: one request per pool with work, the layer's tokens once
// and then each expert's rows.
struct PoolWork {
  DispatchPlan plan;
  torch::Tensor weights;                                // [N, k]
  std::vector<moe::v1::ForwardRequest> reqs;            // per pool index of the answer
  std::vector<std::vector<std::pair<int, int>>> slots;  // (kind, index) per work item
  std::vector<int> busy;                                // pools with work
};

// REQUIRES: `route` has the sizes of a valid answer for n tokens.
absl::StatusOr<PoolWork> PlanPoolWork(const moe::v1::RouteResponse& route, int64_t n, int n_shared,
                                      int layer, const moe::v1::Tensor& hidden) {
  const int k = route.top_k();
  PoolWork w;
  torch::Tensor ids = torch::empty({n, k}, torch::kInt64);
  w.weights = torch::empty({n, k}, torch::kFloat);
  for (int64_t i = 0; i < n * k; ++i) {
    ids.data_ptr<int64_t>()[i] = route.expert_ids(i);
    w.weights.data_ptr<float>()[i] = route.weights(i);
  }
  w.plan = PlanDispatch(ids);
  const size_t n_pools = route.pools_size();
  w.reqs.resize(n_pools);
  w.slots.resize(n_pools);
  auto pool_of = [&](int index) -> absl::StatusOr<int> {
    if (index < 0 || index >= static_cast<int>(n_pools)) {
      return absl::InternalError("router: pool index out of range");
    }
    return index;
  };
  for (size_t g = 0; g < w.plan.experts.size(); ++g) {
    // Every slot of an expert has the same pool: take the first.
    const int first_row = w.plan.rows[g][0];
    int index = -1;
    for (int s = 0; s < k; ++s) {
      if (route.expert_ids(first_row * k + s) == w.plan.experts[g])
        index = route.pool_index(first_row * k + s);
    }
    absl::StatusOr<int> p = pool_of(index);
    if (!p.ok()) return p.status();
    moe::v1::ExpertWork* work = w.reqs[*p].add_work();
    work->set_expert(static_cast<int32_t>(w.plan.experts[g]));
    work->mutable_rows()->Add(w.plan.rows[g].begin(), w.plan.rows[g].end());
    w.slots[*p].push_back({0, static_cast<int>(g)});
  }
  for (int s = 0; s < n_shared; ++s) {
    absl::StatusOr<int> p = pool_of(route.shared_pool_index(s));
    if (!p.ok()) return p.status();
    moe::v1::ExpertWork* work = w.reqs[*p].add_work();
    work->set_expert(s);
    work->set_shared(true);
    for (int64_t r = 0; r < n; ++r) work->add_rows(static_cast<int32_t>(r));
    w.slots[*p].push_back({1, s});
  }
  for (size_t p = 0; p < n_pools; ++p) {
    if (w.reqs[p].work_size() == 0) continue;
    w.reqs[p].set_layer(layer);
    *w.reqs[p].mutable_hidden() = hidden;
    w.busy.push_back(static_cast<int>(p));
  }
  return w;
}

bool SameWork(const moe::v1::ForwardRequest& a, const moe::v1::ForwardRequest& b) {
  if (a.layer() != b.layer() || a.work_size() != b.work_size()) return false;
  for (int i = 0; i < a.work_size(); ++i) {
    const moe::v1::ExpertWork &x = a.work(i), &y = b.work(i);
    if (x.expert() != y.expert() || x.shared() != y.shared() || x.rows_size() != y.rows_size() ||
        !std::equal(x.rows().begin(), x.rows().end(), y.rows().begin())) {
      return false;
    }
  }
  return true;
}

}  // namespace

void RemoteMoeExecutor::Send(Call& call, Link& link, bool predict) {
  call.start = absl::Now();
  call.route.Clear();
  call.guesses.clear();
  call.route_req.Clear();
  call.route_req.set_layer(call.layer);
  EncodeTensor(call.x, call.route_req.mutable_hidden());
  for (uint64_t k : call.keys) call.route_req.add_token_keys(k);
  call.route_req.set_return_probs(call.want_probs);
  if (!options_.streams) return;  // Finish makes the unary call
  link.route->Send(&call.route_req, &call.route);
  if (predict) Predict(call, link);
}

void RemoteMoeExecutor::Remember(int layer, const moe::v1::RouteResponse& route) {
  if (options_.gates.empty()) return;
  absl::MutexLock lock(&known_mu_);
  Known& k = known_[layer];
  if (!k.valid || k.epoch != route.placement_epoch()) {
    k = Known();
    k.epoch = route.placement_epoch();
    k.pools.assign(route.pools().begin(), route.pools().end());
    k.addresses.assign(route.pool_addresses().begin(), route.pool_addresses().end());
    k.expert_pool.assign(config_.n_experts, -1);
  }
  k.valid = true;
  const moe::v1::RoutingPolicy& p = route.policy();
  k.policy.top_k = p.top_k();
  k.policy.noise_std = p.noise_std();
  k.policy.capacity_factor = p.capacity_factor();
  k.policy.noise_seed = p.noise_seed();
  for (int i = 0; i < route.expert_ids_size(); ++i) {
    if (route.expert_ids(i) >= 0) {
      k.expert_pool[route.expert_ids(i) / config_.granularity] = route.pool_index(i);
    }
  }
  k.shared_pool.assign(route.shared_pool_index().begin(), route.shared_pool_index().end());
}

void RemoteMoeExecutor::Predict(Call& call, Link& link) {
  if (options_.gates.empty()) return;
  Known known;
  {
    absl::MutexLock lock(&known_mu_);
    if (!known_[call.layer].valid) return;
    known = known_[call.layer];
  }
  // Only an answer carrying a policy can be predicted (a router that does not send one).
  if (known.policy.top_k <= 0 || static_cast<int>(known.shared_pool.size()) != config_.n_shared) {
    return;
  }
  c10::InferenceMode guard;
  const int64_t n = call.x.size(0);
  RoutingResult r = RouteTokens(call.x, gates_[call.layer], known.policy, call.layer, call.keys);
  const int k = known.policy.top_k;
  moe::v1::RouteResponse guess;
  guess.set_top_k(k);
  const int64_t* ids = r.expert_ids.data_ptr<int64_t>();
  const float* w = r.weights.data_ptr<float>();
  for (int64_t i = 0; i < n * k; ++i) {
    int pool = -1;
    if (ids[i] >= 0) {
      pool = known.expert_pool[ids[i] / config_.granularity];
      if (pool < 0) return;  // an expert not seen in this placement yet: no guess
    }
    guess.add_expert_ids(static_cast<int32_t>(ids[i]));
    guess.add_weights(w[i]);
    guess.add_pool_index(pool);
  }
  for (int p : known.shared_pool) guess.add_shared_pool_index(p);
  for (const std::string& name : known.pools) guess.add_pools(name);
  absl::StatusOr<PoolWork> work =
      PlanPoolWork(guess, n, config_.n_shared, call.layer, call.route_req.hidden());
  if (!work.ok()) return;
  call.guessed_at = absl::Now();
  for (int p : work->busy) {
    Call::Guess& g = call.guesses[known.addresses[p]];
    g.pool = Channel(known.pools[p], known.addresses[p]);
    g.req = std::move(work->reqs[p]);
    g.call = link.Forward(g.pool);
    g.call->Send(&g.req, &g.resp);
  }
}

grpc::Status RemoteMoeExecutor::CallRoute(Link& link, const moe::v1::RouteRequest& req,
                                          moe::v1::RouteResponse* resp, absl::Time deadline) {
  if (!options_.streams) {
    grpc::ClientContext ctx;
    SetDeadline(ctx, deadline);
    return router_->Route(&ctx, req, resp);
  }
  // Sent by Send: wait for the answer (the guesses' answers are taken in as they come).
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

absl::StatusOr<MoeLayerOutput> RemoteMoeExecutor::Finish(Call& call, Link& link, Attempt* attempt) {
  const int layer = call.layer;
  const int64_t n = call.x.size(0);
  // Every path out leaves no guess in flight: the link's streams are free for its next call.
  absl::Cleanup drain = [&] { call.CancelGuesses(link); };
  moe::v1::RouteResponse& route = call.route;
  {
    const grpc::Status st =
        CallRoute(link, call.route_req, &route, call.start + options_.route_deadline);
    route_seconds_->Observe(absl::ToDoubleSeconds(absl::Now() - call.start));
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
  if (route.placement_epoch() > link.epoch) {
    // A new placement (rare): Forget may end streams that guesses still use, so the guesses are
    // dropped and the answer's work is all sent again.
    call.CancelGuesses(link);
    call.guesses.clear();
    link.Forget(route.placement_epoch(), route.pool_addresses());
  }
  for (uint64_t seen = newest_epoch_.load(); route.placement_epoch() > seen;) {
    if (newest_epoch_.compare_exchange_weak(seen, route.placement_epoch())) {
      if (options_.on_new_epoch) options_.on_new_epoch(route.placement_epoch());
      break;
    }
  }
  Remember(layer, route);
  absl::StatusOr<PoolWork> planned =
      PlanPoolWork(route, n, config_.n_shared, layer, call.route_req.hidden());
  if (!planned.ok()) return planned.status();
  PoolWork& work = *planned;
  const std::vector<moe::v1::ForwardRequest>& reqs = work.reqs;
  const size_t n_pools = route.pools_size();

  // Pools whose guessed request is exactly the answer's keep their answer; the rest are sent now.
  std::vector<Call::Guess*> kept(n_pools, nullptr);
  std::vector<Call::Guess*> needed;  // kept guesses, then guesses on the streams of missed pools
  std::vector<Call::Guess*> in_the_way;
  std::vector<int> missed;
  for (int p : work.busy) {
    auto it = call.guesses.find(route.pool_addresses(p));
    if (it != call.guesses.end() && it->second.pool->name == route.pools(p) &&
        SameWork(it->second.req, reqs[p])) {
      kept[p] = &it->second;
      needed.push_back(&it->second);
    } else {
      missed.push_back(p);
      if (it != call.guesses.end()) in_the_way.push_back(&it->second);
    }
  }
  if (!options_.gates.empty()) {
    (missed.empty() && !call.guesses.empty() ? predicted_ : unpredicted_).fetch_add(1);
    (call.guesses.empty() ? none_ : missed.empty() ? kept_ : resent_)->Increment();
  }
  std::vector<std::shared_ptr<PoolChannel>> pools(n_pools);
  for (int p : work.busy) pools[p] = Channel(route.pools(p), route.pool_addresses(p));
  std::vector<moe::v1::ForwardResponse> resps(n_pools);
  std::vector<grpc::Status> status(n_pools);
  const absl::Time guess_deadline = call.guessed_at + options_.forward_deadline;
  if (!missed.empty()) {
    // A missed pool's stream carries one message at a time: its guess goes first.
    call.WaitGuesses(link, in_the_way, guess_deadline);
    CallPools(link, pools, missed, reqs, resps, status);
  }
  call.WaitGuesses(link, needed, guess_deadline);
  std::vector<const moe::v1::ForwardResponse*> answer(n_pools, nullptr);
  for (int p : work.busy) {
    if (kept[p] == nullptr) {
      answer[p] = &resps[p];
      continue;
    }
    answer[p] = &kept[p]->resp;
    status[p] = kept[p]->status;
    pools[p]->seconds->Observe(absl::ToDoubleSeconds(kept[p]->answered_at - call.guessed_at));
  }

  std::vector<torch::Tensor> routed(work.plan.experts.size());
  std::vector<torch::Tensor> shared(config_.n_shared);
  absl::Status first_error;
  for (int p : work.busy) {
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
      const auto& w = reqs[p].work(0);
      first_error.Update(absl::UnavailableError(
          absl::StrCat("layer ", layer, w.shared() ? " shared expert " : " expert ",
                       w.shared() ? w.expert() : w.expert() / config_.granularity, ": pool ", name,
                       " failed: ", status[p].error_message())));
      continue;
    }
    int64_t total = 0;
    for (const auto& w : reqs[p].work()) total += w.rows_size();
    absl::StatusOr<torch::Tensor> out =
        DecodeTensor(answer[p]->output(), absl::StrCat("pool ", name, " output"),
                     {{total, config_.d_model}, false});
    if (!out.ok()) {
      first_error.Update(absl::InternalError(out.status().message()));
      continue;
    }
    int64_t offset = 0;
    for (size_t i = 0; i < work.slots[p].size(); ++i) {
      const int64_t rows = reqs[p].work(static_cast<int>(i)).rows_size();
      torch::Tensor part = out->narrow(0, offset, rows);
      offset += rows;
      if (work.slots[p][i].first == 0) {
        routed[work.slots[p][i].second] = part;
      } else {
        shared[work.slots[p][i].second] = part;
      }
    }
  }
  if (!first_error.ok()) return first_error;

  MoeLayerOutput result;
  result.output = CombineExpertOutputs(routed, work.plan, work.weights, config_.d_model);
  for (int s = 0; s < config_.n_shared; ++s) result.output = result.output + shared[s];
  result.top_k = k;
  result.expert_ids.assign(route.expert_ids().begin(), route.expert_ids().end());
  result.weights.assign(route.weights().begin(), route.weights().end());
  result.pool_index.assign(route.pool_index().begin(), route.pool_index().end());
  result.pools.assign(route.pools().begin(), route.pools().end());
  result.shared_pool_index.assign(route.shared_pool_index().begin(),
                                  route.shared_pool_index().end());
  if (call.want_probs && route.has_probs()) {
    absl::StatusOr<torch::Tensor> probs = DecodeTensor(route.probs(), "probs", {{n, -1}, false});
    if (probs.ok()) result.probs = ToFloatVector(*probs);
  }
  result.dropped = route.dropped_tokens();
  result.latency_ms = absl::ToDoubleMilliseconds(absl::Now() - call.start);
  return result;
}

}  // namespace moe
