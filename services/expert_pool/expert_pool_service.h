// The ExpertPool service: holds the weights of the experts this pool hosts (and only those) on
// its device, and computes them for all the tokens of one layer in one Forward call.
// Thread-safe (concurrent Forward calls share read-only weights).
#ifndef MOE_SERVICES_EXPERT_POOL_EXPERT_POOL_SERVICE_H_
#define MOE_SERVICES_EXPERT_POOL_EXPERT_POOL_SERVICE_H_

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "models/config.h"
#include "models/experts.h"
#include "moe/v1/expert.grpc.pb.h"
#include "services/common/message_streams.h"
#include "services/common/placement.h"

namespace moe {

class ExpertPoolService final : public moe::v1::ExpertPool::CallbackService {
 public:
  ExpertPoolService(const ModelConfig& config, PoolSpec pool, ExpertBank bank, std::string device,
                    prometheus::Registry& registry);

  // Ends ForwardStreams after their current message and refuses new ones: call before shutting
  // the server down.
  void CloseStreams() { forward_streams_.Close(); }

  // Computed inline on gRPC's callback thread (see RouterService).
  grpc::ServerUnaryReactor* Forward(grpc::CallbackServerContext* ctx,
                                    const moe::v1::ForwardRequest* req,
                                    moe::v1::ForwardResponse* resp) override;
  grpc::ServerBidiReactor<moe::v1::ForwardRequest, moe::v1::ForwardResponse>* ForwardStream(
      grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* Describe(grpc::CallbackServerContext* ctx,
                                     const moe::v1::DescribeRequest* req,
                                     moe::v1::DescribeResponse* resp) override;

 private:
  absl::Status DoForward(const moe::v1::ForwardRequest& req, moe::v1::ForwardResponse* resp);
  absl::Status DoDescribe(moe::v1::DescribeResponse* resp);

  const ModelConfig config_;
  const PoolSpec pool_;
  const ExpertBank bank_;
  const std::string device_;
  // (layer, base expert or -1 - shared id) -> tokens computed
  std::map<std::pair<int, int>, prometheus::Counter*> computed_;
  MessageStreams<moe::v1::ForwardRequest, moe::v1::ForwardResponse> forward_streams_{
      [this](const moe::v1::ForwardRequest& req, moe::v1::ForwardResponse* resp) {
        return DoForward(req, resp);
      }};
  prometheus::Histogram* forward_seconds_;
};

}  // namespace moe

#endif  // MOE_SERVICES_EXPERT_POOL_EXPERT_POOL_SERVICE_H_
