// The ExpertPool service: holds the weights of the experts this pool hosts (and only those) on
// its device, and computes them for all the tokens of one layer in one Forward call. What it
// hosts changes at runtime (LoadExperts, DropExperts, asked by the router): a change builds a new
// bank beside the one in use and swaps it in, so Forward calls never wait for a load, and a call
// that started on the old bank finishes on it.
//
// Thread-safe. Changes run one at a time on the service's own worker thread, never on gRPC's.
#ifndef MOE_SERVICES_EXPERT_POOL_EXPERT_POOL_SERVICE_H_
#define MOE_SERVICES_EXPERT_POOL_EXPERT_POOL_SERVICE_H_

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "models/config.h"
#include "models/experts.h"
#include "moe/v1/expert.grpc.pb.h"
#include "services/common/message_streams.h"
#include "services/common/serial_worker.h"

namespace moe {

struct ExpertPoolOptions {
  std::string name;
  std::string device = "cpu";  // as reported by Describe
  int expert_slots = 0;        // experts (routed and shared) per layer at most; 0 = no limit
  // How long DropExperts waits for Forward calls still computing dropped experts.
  absl::Duration drop_wait = absl::Seconds(30);
};

class ExpertPoolService final : public moe::v1::ExpertPool::CallbackService {
 public:
  // `expert_state`: the checkpoint's expert tensors, the source of later loads. `bank`: what the
  // pool hosts at start.
  ExpertPoolService(const ModelConfig& config, ExpertPoolOptions options,
                    std::map<std::string, torch::Tensor> expert_state, ExpertBank bank,
                    prometheus::Registry& registry);

  // Ends ForwardStreams after their current message and refuses new ones: call before shutting
  // the server down.
  void CloseStreams() { forward_streams_.Close(); }
  // What GetFrameEndpoint answers (frame_service.h); set before serving.
  void SetFrameEndpoint(moe::v1::FrameEndpoint endpoint) { frame_endpoint_ = std::move(endpoint); }
  // Forward over frames: the same handler as ForwardStream's.
  FrameServer::Handler frame_handler() const { return forward_streams_.frame_handler(); }

  // Computed inline on gRPC's callback thread (see RouterService).
  grpc::ServerUnaryReactor* Forward(grpc::CallbackServerContext* ctx,
                                    const moe::v1::ForwardRequest* req,
                                    moe::v1::ForwardResponse* resp) override;
  grpc::ServerBidiReactor<moe::v1::ForwardRequest, moe::v1::ForwardResponse>* ForwardStream(
      grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* GetFrameEndpoint(grpc::CallbackServerContext* ctx,
                                             const moe::v1::FrameEndpointRequest* req,
                                             moe::v1::FrameEndpoint* resp) override;
  grpc::ServerUnaryReactor* Describe(grpc::CallbackServerContext* ctx,
                                     const moe::v1::DescribeRequest* req,
                                     moe::v1::DescribeResponse* resp) override;
  grpc::ServerUnaryReactor* LoadExperts(grpc::CallbackServerContext* ctx,
                                        const moe::v1::ChangeExpertsRequest* req,
                                        moe::v1::DescribeResponse* resp) override;
  grpc::ServerUnaryReactor* DropExperts(grpc::CallbackServerContext* ctx,
                                        const moe::v1::ChangeExpertsRequest* req,
                                        moe::v1::DescribeResponse* resp) override;

 private:
  using Key = std::pair<int, int>;  // (layer, base expert), or (layer, -1 - shared id)
  std::shared_ptr<const ExpertBank> bank() const;
  absl::Status DoForward(const moe::v1::ForwardRequest& req, moe::v1::ForwardResponse* resp);
  void FillDescribe(const ExpertBank& bank, moe::v1::DescribeResponse* resp) const;
  // Reads the (layer, expert) blocks of a change request; INVALID_ARGUMENT names the bad one.
  absl::StatusOr<std::vector<Key>> ReadChange(const moe::v1::ChangeExpertsRequest& req) const;
  // LoadExperts and DropExperts: validated here, carried out on the worker thread.
  grpc::ServerUnaryReactor* Change(grpc::CallbackServerContext* ctx,
                                   const moe::v1::ChangeExpertsRequest& req,
                                   moe::v1::DescribeResponse* resp, bool load);
  absl::Status DoLoad(const std::vector<Key>& keys, moe::v1::DescribeResponse* resp);
  absl::Status DoDrop(const std::vector<Key>& keys, moe::v1::DescribeResponse* resp);
  void UpdateHostedGauges(const ExpertBank& bank);
  bool Hosts(const ExpertBank& bank, Key key) const;
  // The bank filter that selects `keys` (which must outlive it).
  static ExpertBank::HostFilter Selects(const std::set<Key>& keys);
  // After a change swapped in `next`: gauges, the change's duration, and the answer.
  void Report(std::shared_ptr<const ExpertBank> next, absl::Time start,
              moe::v1::DescribeResponse* resp);

  const ModelConfig config_;
  const ExpertPoolOptions options_;
  const std::map<std::string, torch::Tensor> expert_state_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const ExpertBank> bank_ ABSL_GUARDED_BY(mu_);

  std::map<Key, prometheus::Counter*> computed_;
  prometheus::Histogram* forward_seconds_;
  prometheus::Counter* loaded_;
  prometheus::Counter* dropped_;
  prometheus::Histogram* change_seconds_;
  std::vector<prometheus::Gauge*> hosted_;  // per layer
  moe::v1::FrameEndpoint frame_endpoint_;   // set before serving, read-only after
  MessageStreams<moe::v1::ForwardRequest, moe::v1::ForwardResponse> forward_streams_{
      [this](const moe::v1::ForwardRequest& req, moe::v1::ForwardResponse* resp) {
        return DoForward(req, resp);
      }};
  SerialWorker changes_;  // last: its thread stops before the members it uses go
};

}  // namespace moe

#endif  // MOE_SERVICES_EXPERT_POOL_EXPERT_POOL_SERVICE_H_
