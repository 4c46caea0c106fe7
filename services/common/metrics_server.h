// GET /metrics in Prometheus' text format, on the tree's one HTTP server (http_server.h).
#ifndef MOE_SERVICES_COMMON_METRICS_SERVER_H_
#define MOE_SERVICES_COMMON_METRICS_SERVER_H_

#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/common/http_server.h"

namespace moe {

class MetricsServer {
 public:
  // Binds HOST:PORT (port 0 picks one) and starts serving.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, std::shared_ptr<prometheus::Registry> registry);
  int port() const { return http_->port(); }

 private:
  explicit MetricsServer(std::unique_ptr<HttpServer> http) : http_(std::move(http)) {}
  std::unique_ptr<HttpServer> http_;
};

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_METRICS_SERVER_H_
