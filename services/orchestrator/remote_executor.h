// MoE layers over the network: one Route message to the router, then one Forward message per
// pool, all pools in parallel, then the same combine as in-process. A pool that fails is reported
// to the router and the layer is re-routed to a replica; with no replica left the call fails with
// UNAVAILABLE naming the (layer, expert). Thread-safe.
//
// Pools are whatever the router's answer names: each Route response carries the pools' names and
// addresses at its placement epoch, and pools are dialed on first use, so pools that join are
// used at once and pools that leave are forgotten (their streams closed when a newer epoch no
// longer names them). A pool that no longer hosts an expert it was sent (the placement moved
// meanwhile) answers FAILED_PRECONDITION and the layer is re-routed, without blaming the pool.
//
// Messages travel on persistent streams (RouteStream, ForwardStream), one set per layer under way
// (an engine lane's micro-batch): a message costs less than a unary call (no call setup, headers
// or trailers), or, to every peer that offers them (GetFrameEndpoint), as frames on a plain TCP
// connection that the waiting thread writes and polls itself (frames.h, frame_call.h; half a
// stream message's cost). Each message has its own deadline (route_deadline, forward_deadline).
//
// Speculative Forward (options.gates set, streams on): the router's answer for a layer is mostly
// predictable, since the gate is a pure function (RouteTokens) of the hidden states, the policy
// and the token keys, and the replica of an expert rarely changes between calls. So the Route
// message and each pool's predicted work leave together, from the router's last answer for the
// layer (its policy, placement epoch and replica of each expert) and the local gate. The router
// stays the authority: once its answer arrives, the pools' requests are built from it exactly as
// without prediction, and a pool's answer is kept only if the request it answered is identical
// (same pool address, same experts, same rows); the others are sent again and their speculative
// answers dropped. The tokens, the routing events and the router's counters are therefore those
// of the answer; a correct prediction saves a round trip per layer, a wrong one costs the
// speculative work on the pools.
#ifndef MOE_SERVICES_ORCHESTRATOR_REMOTE_EXECUTOR_H_
#define MOE_SERVICES_ORCHESTRATOR_REMOTE_EXECUTOR_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "models/moe_executor.h"
#include "models/routing.h"
#include "moe/v1/expert.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"
#include "services/common/log.h"
#include "services/common/placement.h"
#include "services/common/tls.h"

namespace moe {

struct RemoteExecutorOptions {
  absl::Duration route_deadline = absl::Seconds(5);
  absl::Duration forward_deadline = absl::Seconds(10);
  int max_attempts = 5;  // per layer call, re-routing after a pool failure or a moved expert
  bool streams = true;   // false: one unary Route / Forward call per message
  // With streams on: Route and Forward messages as frames (frames.h, plaintext: leave off with
  // TLS credentials) to every peer that offers them; gRPC streams to the others.
  bool frames = true;
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // to router and pools; null = plaintext
  // Called with each placement epoch newer than any seen before (from the calling thread; must
  // not block).
  std::function<void(uint64_t epoch)> on_new_epoch;
  // Per layer [n_routed, C]: the gates, to predict the router's answers (speculative Forward,
  // above). Empty: each layer's Forward waits for its Route answer.
  std::vector<torch::Tensor> gates;
};

class RemoteMoeExecutor : public MoeExecutor {
 public:
  RemoteMoeExecutor(const ModelConfig& config, const ClusterSpec& cluster,
                    const RemoteExecutorOptions& options, prometheus::Registry& registry,
                    const Logger* logger);

  absl::StatusOr<MoeLayerOutput> Forward(int layer, const torch::Tensor& x,
                                         absl::Span<const uint64_t> token_keys,
                                         bool want_probs) override;
  // Sends the layer's messages and returns; the answers are read when the layer is waited for.
  std::unique_ptr<PendingMoeLayer> Begin(int layer, torch::Tensor x,
                                         std::vector<uint64_t> token_keys,
                                         bool want_probs) override;

  ~RemoteMoeExecutor() override;

  // Layer calls whose pools' answers were all predicted, and those that were not (for tests and
  // the benchmarks' profile).
  int64_t predicted_layers() const { return predicted_.load(); }
  int64_t unpredicted_layers() const { return unpredicted_.load(); }

  moe::v1::Router::Stub& router() { return *router_; }

 private:
  // A pool as dialed: by address (a pool that moves is a new channel), named for messages.
  struct PoolChannel {
    std::string name;
    std::string address;
    std::unique_ptr<moe::v1::ExpertPool::Stub> stub;
    prometheus::Histogram* seconds;  // Forward messages to it, client side
  };
  // One caller's streams: to the router and to every pool it has used, on one completion queue.
  struct Link;
  // One attempt at a layer: its messages and their answers.
  struct Call;
  class Layer;  // a PendingMoeLayer
  // What the router answered last for a layer: the basis of the next prediction.
  struct Known {
    bool valid = false;
    RoutingPolicy policy;
    uint64_t epoch = 0;
    std::vector<std::string> pools, addresses;
    std::vector<int> expert_pool;  // per base expert: index into pools; -1 = not seen yet
    std::vector<int> shared_pool;  // per shared expert
  };
  // The outcome of one attempt at a layer.
  struct Attempt {
    std::vector<std::string> failed_pools;  // transport failures: report, then re-route
    bool moved = false;                     // an expert was no longer where routed: re-route
  };
  std::unique_ptr<Link> AcquireLink();
  void ReleaseLink(std::unique_ptr<Link> link);
  std::shared_ptr<PoolChannel> Channel(const std::string& name, const std::string& address);
  // One message each way, over the link's streams or as unary calls (options_.streams).
  grpc::Status CallRoute(Link& link, const moe::v1::RouteRequest& req, moe::v1::RouteResponse* resp,
                         absl::Time deadline);
  // To every pool in `busy` at once (indices into `pools`); fills resps[p] and status[p].
  void CallPools(Link& link, const std::vector<std::shared_ptr<PoolChannel>>& pools,
                 const std::vector<int>& busy, const std::vector<moe::v1::ForwardRequest>& reqs,
                 std::vector<moe::v1::ForwardResponse>& resps, std::vector<grpc::Status>& status);

  // One attempt in two halves: Send sends (the Route message and the predicted Forwards), Finish
  // reads the answers, sends what the prediction missed and combines. Complete retries.
  void Send(Call& call, Link& link, bool predict);
  absl::StatusOr<MoeLayerOutput> Finish(Call& call, Link& link, Attempt* attempt);
  absl::StatusOr<MoeLayerOutput> Complete(Call& call, Link& link);
  // After a failed attempt: reports failed pools and waits a moment for a moved placement.
  void AfterFailure(int layer, const Attempt& outcome, const absl::Status& error, int attempt);
  // Predicts each pool's work from the last answer for the layer and sends it (nothing when
  // nothing is known yet).
  void Predict(Call& call, Link& link);
  void Remember(int layer, const moe::v1::RouteResponse& route);

  const ModelConfig config_;
  const RemoteExecutorOptions options_;
  const Logger* logger_;
  std::string router_address_;
  std::unique_ptr<moe::v1::Router::Stub> router_;
  prometheus::Family<prometheus::Histogram>* forward_family_;
  prometheus::Histogram* route_seconds_;
  absl::Mutex channels_mu_;
  std::map<std::string, std::shared_ptr<PoolChannel>> channels_ ABSL_GUARDED_BY(channels_mu_);
  absl::Mutex frames_mu_;
  // Where each peer (by the address it is dialed at) offers frames, once asked.
  std::map<std::string, std::string> frames_at_ ABSL_GUARDED_BY(frames_mu_);
  absl::Mutex links_mu_;
  std::vector<std::unique_ptr<Link>> idle_links_ ABSL_GUARDED_BY(links_mu_);
  std::atomic<uint64_t> newest_epoch_{0};
  absl::Mutex known_mu_;
  std::vector<Known> known_ ABSL_GUARDED_BY(known_mu_);  // per layer
  const std::vector<PackedGate> gates_;                  // options_.gates, packed (routing.h)
  std::atomic<int64_t> predicted_{0}, unpredicted_{0};
  prometheus::Counter* kept_;  // moe_speculative_layers_total by outcome
  prometheus::Counter* resent_;
  prometheus::Counter* none_;
  // moe_internal_links_total by "peer/transport" ("router/frames", "pool/grpc", ...).
  std::map<std::string, prometheus::Counter*> links_opened_;
};

}  // namespace moe

#endif  // MOE_SERVICES_ORCHESTRATOR_REMOTE_EXECUTOR_H_
