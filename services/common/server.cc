#include "services/common/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/gauge.h>
#include <pthread.h>
#include <signal.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.pb.h"
#include "services/common/metrics_server.h"

namespace moe {

void InitServiceProcess() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

grpc::ChannelArguments InternalChannelArguments() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  // Reconnect quickly once a restarted pool is back.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return args;
}

ServiceHost::ServiceHost(ServerOptions options)
    : options_(std::move(options)), registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::BuildGauge()
      .Name("moe_build_info")
      .Help("Always 1; labels say which service this process is")
      .Register(*registry_)
      .Add({{"service", options_.service}})
      .Set(1);
}

ServiceHost::~ServiceHost() {
  if (server_ != nullptr) Shutdown(absl::ZeroDuration());
}

absl::Status ServiceHost::Start() {
  if (!options_.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> m =
        MetricsServer::Start(options_.metrics_listen, registry_);
    if (!m.ok()) return m.status();
    metrics_ = std::move(*m);
  }
  grpc::EnableDefaultHealthCheckService(true);
  // gRPC's health service carries no protobuf descriptor; reflection serves the one generated
  // from proto/grpc/health/v1/health.proto, if the binary links it. Naming it here keeps the
  // linker from dropping it from services that never call Health themselves, so that grpcurl can
  // describe (and call) grpc.health.v1.Health on every service.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const bool tls = options_.credentials != nullptr;
  builder.AddListeningPort(options_.listen,
                           tls ? options_.credentials : grpc::InsecureServerCredentials(), &port_);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  for (grpc::Service* s : services_) builder.RegisterService(s);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(absl::StrCat("--listen=", options_.listen, ": cannot bind",
                                               tls ? " (or --tls_cert/--tls_key refused)" : ""));
  }
  SetServing(false);
  return absl::OkStatus();
}

namespace {

// "HOST:0" with the port bound in place of the one asked for.
std::string WithPort(const std::string& listen, int port) {
  const size_t colon = listen.rfind(':');
  return absl::StrCat(colon == std::string::npos ? "" : listen.substr(0, colon), ":", port);
}

}  // namespace

std::string ServiceHost::address() const { return WithPort(options_.listen, port_); }

std::string ServiceHost::metrics_address() const {
  return metrics_ == nullptr ? "" : WithPort(options_.metrics_listen, metrics_->port());
}

int ServiceHost::metrics_port() const { return metrics_ == nullptr ? 0 : metrics_->port(); }

void ServiceHost::SetServing(bool serving) {
  if (server_ == nullptr) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus(serving);
  for (const std::string& name : names_) health->SetServingStatus(name, serving);
}

void ServiceHost::WaitForShutdownSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
}

void ServiceHost::Shutdown(absl::Duration grace) {
  if (server_ == nullptr) return;
  SetServing(false);
  server_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(absl::ToInt64Milliseconds(grace)));
  server_->Wait();
  server_.reset();
}

}  // namespace moe
