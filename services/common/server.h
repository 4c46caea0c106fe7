// The one server bootstrap: gRPC server with reflection and grpc.health.v1 (NOT_SERVING until
// the service says it is ready), a Prometheus /metrics endpoint, and graceful shutdown on
// SIGTERM/SIGINT (health flips to NOT_SERVING, in-flight calls get a grace period).
#ifndef MOE_SERVICES_COMMON_SERVER_H_
#define MOE_SERVICES_COMMON_SERVER_H_

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace moe {

struct ServerOptions {
  std::string service;         // "router", "expert_pool", "orchestrator": for logs and metrics
  std::string listen;          // gRPC HOST:PORT (port 0 picks one)
  std::string metrics_listen;  // HOST:PORT for /metrics; empty = no endpoint (registry still works)
  int max_message_bytes = 64 << 20;
  std::shared_ptr<grpc::ServerCredentials> credentials = nullptr;  // null = plaintext (tls.h)
};

// Call first thing in main, before any thread starts: blocks SIGTERM/SIGINT so that they reach
// sigwait, and turns off absl's mutex deadlock detector (Debian's absl is built with it on, and
// gRPC takes absl mutexes on every call: a cycle-graph update per lock).
void InitServiceProcess();

// Arguments for channels between the cluster's own services. Without BDP probing: it adds PING
// frames (and wake-ups) to calls that carry a few KB each (an empty loopback call here took
// 188 us with it, 141 without; bench/rpc_bench).
grpc::ChannelArguments InternalChannelArguments();

// Not thread-safe to set up; SetServing and port are thread-safe once started.
class ServiceHost {
 public:
  explicit ServiceHost(ServerOptions options);
  ~ServiceHost();

  // The registry every metric of this process lives in.
  prometheus::Registry& registry() { return *registry_; }
  const std::shared_ptr<prometheus::Registry>& registry_ptr() { return registry_; }

  // `full_name` (e.g. moe::v1::Router::service_full_name()) gets a grpc.health.v1 status of its
  // own, so a client can ask which service answers at an address.
  void AddService(grpc::Service* service, std::string full_name) {
    services_.push_back(service);
    names_.push_back(std::move(full_name));
  }
  // Binds and starts; health is NOT_SERVING until SetServing(true).
  absl::Status Start();
  int port() const { return port_; }
  // HOST:PORT as bound: the --listen host with the port the server got ("10.0.0.2:50061").
  std::string address() const;
  int metrics_port() const;
  // HOST:PORT of /metrics as bound; empty when off.
  std::string metrics_address() const;
  void SetServing(bool serving);

  // Blocks until SIGTERM or SIGINT. REQUIRES: InitServiceProcess() was called.
  void WaitForShutdownSignal();
  // Stops accepting calls and waits up to `grace` for in-flight ones.
  void Shutdown(absl::Duration grace);

 private:
  ServerOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<class MetricsServer> metrics_;
  std::vector<grpc::Service*> services_;
  std::vector<std::string> names_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_SERVER_H_
