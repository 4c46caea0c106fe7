#include "services/common/metrics_server.h"

#include <prometheus/text_serializer.h>

namespace moe {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, std::shared_ptr<prometheus::Registry> registry) {
  HttpServerOptions options;
  options.max_connections = 16;  // scrapes are small and rare
  options.max_body_bytes = 0;
  absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Start(
      address, "--metrics_listen", options, [registry](const HttpRequest& req, HttpResponse& resp) {
        if (req.path == "/metrics" && req.method == "GET") {
          resp.Send(200, "text/plain; version=0.0.4; charset=utf-8",
                    prometheus::TextSerializer().Serialize(registry->Collect()));
        } else {
          resp.Send(404, "text/plain", "only GET /metrics here\n");
        }
      });
  if (!http.ok()) return http.status();
  return std::unique_ptr<MetricsServer>(new MetricsServer(*std::move(http)));
}

}  // namespace moe
