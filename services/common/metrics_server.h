// A minimal HTTP endpoint serving GET /metrics in Prometheus' text format. prometheus-cpp's own
// Exposer (CivetWeb) fails to start inside processes that load Debian's LibTorch, so services
// use this instead. One thread; one short request at a time (scrapes are small and rare).
#ifndef MOE_SERVICES_COMMON_METRICS_SERVER_H_
#define MOE_SERVICES_COMMON_METRICS_SERVER_H_

#include <prometheus/registry.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace moe {

class MetricsServer {
 public:
  // Binds HOST:PORT (port 0 picks one) and starts serving.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, std::shared_ptr<prometheus::Registry> registry);
  ~MetricsServer();
  int port() const { return port_; }

 private:
  MetricsServer(int fd, int port, std::shared_ptr<prometheus::Registry> registry);
  void Loop();
  void Serve(int client);
  int fd_;
  int port_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_METRICS_SERVER_H_
