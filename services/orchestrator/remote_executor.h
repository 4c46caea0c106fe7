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
// Messages travel on persistent streams (RouteStream, ForwardStream), one set per calling thread
// at a time (an engine lane): a message costs less than a unary call (no call setup, headers or
// trailers). Each message has its own deadline (route_deadline, forward_deadline).
#ifndef MOE_SERVICES_ORCHESTRATOR_REMOTE_EXECUTOR_H_
#define MOE_SERVICES_ORCHESTRATOR_REMOTE_EXECUTOR_H_

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
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // to router and pools; null = plaintext
  // Called with each placement epoch newer than any seen before (from the calling thread; must
  // not block).
  std::function<void(uint64_t epoch)> on_new_epoch;
};

class RemoteMoeExecutor : public MoeExecutor {
 public:
  RemoteMoeExecutor(const ModelConfig& config, const ClusterSpec& cluster,
                    const RemoteExecutorOptions& options, prometheus::Registry& registry,
                    const Logger* logger);

  absl::StatusOr<MoeLayerOutput> Forward(int layer, const torch::Tensor& x,
                                         absl::Span<const uint64_t> token_keys,
                                         bool want_probs) override;

  ~RemoteMoeExecutor() override;

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

  absl::StatusOr<MoeLayerOutput> TryOnce(int layer, const torch::Tensor& x,
                                         absl::Span<const uint64_t> token_keys, bool want_probs,
                                         Link& link, Attempt* attempt);

  const ModelConfig config_;
  const RemoteExecutorOptions options_;
  const Logger* logger_;
  std::unique_ptr<moe::v1::Router::Stub> router_;
  prometheus::Family<prometheus::Histogram>* forward_family_;
  prometheus::Histogram* route_seconds_;
  absl::Mutex channels_mu_;
  std::map<std::string, std::shared_ptr<PoolChannel>> channels_ ABSL_GUARDED_BY(channels_mu_);
  absl::Mutex links_mu_;
  std::vector<std::unique_ptr<Link>> idle_links_ ABSL_GUARDED_BY(links_mu_);
  std::atomic<uint64_t> newest_epoch_{0};
};

}  // namespace moe

#endif  // MOE_SERVICES_ORCHESTRATOR_REMOTE_EXECUTOR_H_
