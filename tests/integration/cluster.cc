#include "tests/integration/cluster.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"
#include "services/common/tls.h"

namespace moe::testing {
namespace {

pid_t SpawnProcess(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // A test or benchmark that is killed takes its cluster with it (else the services outlive
    // it, holding ports and CPU).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

std::vector<int> FreePorts(int n) {
  std::vector<int> fds, ports;
  for (int i = 0; i < n; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    fds.push_back(fd);
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) close(fd);
  return ports;
}

std::string Cluster::BuildDir() { return MOE_BUILD_DIR; }
std::string Cluster::SourceDir() { return MOE_SOURCE_DIR; }

int Cluster::RunToCompletion(const std::vector<std::string>& argv, std::string* output) {
  const std::string log =
      std::filesystem::temp_directory_path() / ("moe_run_" + std::to_string(getpid()) + ".log");
  std::filesystem::remove(log);
  const pid_t pid = SpawnProcess(argv, log);
  int status = 0;
  waitpid(pid, &status, 0);
  std::ifstream in(log);
  std::stringstream buf;
  buf << in.rdbuf();
  *output = buf.str();
  std::filesystem::remove(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

ClusterOptions TwoPoolOptions(const std::string& model_dir) {
  ClusterOptions o;
  o.model_args = {"--model=" + model_dir, "--threads=1"};
  o.pools = {{"pool-a", "0-3", "all"}, {"pool-b", "4-7", ""}};
  return o;
}

Cluster::Cluster(ClusterOptions options) : options_(std::move(options)) {
  dir_ = std::filesystem::temp_directory_path() /
         absl::StrCat("moe_cluster_", getpid(), "_", reinterpret_cast<uintptr_t>(this));
  std::filesystem::create_directories(dir_);
  cluster_file_ = dir_ + "/cluster.json";
  AssignPorts();
  if (options_.tls) {
    tls_dir_ = dir_ + "/tls";
    std::vector<std::string> argv = {SourceDir() + "/deploy/tls/make_certs.sh", tls_dir_, "router",
                                     "orchestrator", "client"};
    for (const PoolLayout& p : options_.pools) argv.push_back(p.name);
    std::string output;
    if (RunToCompletion(argv, &output) != 0) {
      tls_status_ = absl::InternalError(absl::StrCat("make_certs.sh failed: ", output));
    } else {
      absl::StatusOr<TlsConfig> tls =
          LoadTls(tls_dir_ + "/client.pem", tls_dir_ + "/client.key", tls_dir_ + "/ca.pem");
      if (tls.ok()) {
        client_credentials_ = ChannelCredentials(*tls);
      } else {
        tls_status_ = tls.status();
      }
    }
  }
}

bool ClusterOptions::TlsFromEnvironment() {
  const char* v = std::getenv("MOE_TEST_TLS");
  return v != nullptr && std::string(v) == "1";
}

std::vector<std::string> Cluster::TlsFlags(const std::string& name) const {
  if (tls_dir_.empty()) return {};
  return {absl::StrCat("--tls_cert=", tls_dir_, "/", name, ".pem"),
          absl::StrCat("--tls_key=", tls_dir_, "/", name, ".key"),
          absl::StrCat("--tls_ca=", tls_dir_, "/ca.pem")};
}

std::vector<std::string> Cluster::ClientTlsFlags() const { return TlsFlags("client"); }

std::shared_ptr<grpc::ChannelCredentials> Cluster::ClientCredentials() const {
  return client_credentials_;
}

std::shared_ptr<grpc::Channel> Cluster::Dial(const std::string& name) const {
  return grpc::CreateChannel(address(name), ClientCredentials());
}

void Cluster::AssignPorts() {
  std::vector<std::string> names = {"router", "orchestrator"};
  for (const PoolLayout& p : options_.pools) names.push_back(p.name);
  const std::vector<int> ports = FreePorts(3 * static_cast<int>(names.size()));
  for (size_t i = 0; i < names.size(); ++i) {
    port_[names[i]] = ports[3 * i];
    metrics_port_[names[i]] = ports[3 * i + 1];
    frames_port_[names[i]] = ports[3 * i + 2];
  }
}

void Cluster::StopAll() {
  for (auto& [name, pid] : pid_) {
    if (pid > 0) kill(pid, SIGTERM);
  }
  for (auto& [name, pid] : pid_) {
    if (pid <= 0) continue;
    int status;
    for (int i = 0; i < 100 && waitpid(pid, &status, WNOHANG) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    pid = 0;
  }
}

Cluster::~Cluster() {
  StopAll();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string Cluster::address(const std::string& name) const {
  return absl::StrCat("127.0.0.1:", port_.at(name));
}

int Cluster::metrics_port(const std::string& name) const { return metrics_port_.at(name); }

std::string Cluster::Log(const std::string& name) const {
  std::ifstream in(dir_ + "/" + name + ".log");
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

absl::Status Cluster::Start() {
  if (!tls_status_.ok()) return tls_status_;
  // A port found free can be taken before the service binds it (by another test's process, or
  // as the local port of any outgoing connection): then start again on other ports.
  absl::Status s;
  for (int attempt = 0; attempt < 3; ++attempt) {
    s = StartOnce();
    if (s.ok() || !absl::StrContains(s.message(), "Address already in use")) return s;
    StopAll();
    for (const auto& [name, pid] : pid_) std::filesystem::remove(dir_ + "/" + name + ".log");
    AssignPorts();
  }
  return s;
}

absl::Status Cluster::StartPool(const std::string& name) {
  if (absl::Status s = Spawn(name); !s.ok()) return s;
  return WaitServing(name);
}

absl::Status Cluster::StartOnce() {
  auto dialed = [this](const std::string& name) {
    return options_.advertise ? options_.advertise(name, address(name)) : address(name);
  };
  // Behind `advertise`, frames take the same way as gRPC: a listener on a known port, and what the
  // service tells callers to dial for it.
  frames_advertised_.clear();
  if (options_.advertise) {
    std::vector<std::string> names = {"router"};
    for (const PoolLayout& p : options_.pools) names.push_back(p.name);
    for (const std::string& n : names) {
      frames_advertised_[n] =
          options_.advertise(n + " frames", absl::StrCat("127.0.0.1:", frames_port_[n]));
    }
  }
  std::vector<std::string> pools;
  for (const PoolLayout& p : options_.pools) {
    if (p.join) continue;
    std::string hosts = absl::StrCat("{\"layers\": \"all\", \"experts\": \"", p.experts, "\"");
    if (!p.shared.empty()) absl::StrAppend(&hosts, ", \"shared\": \"", p.shared, "\"");
    pools.push_back(absl::StrCat("{\"name\": \"", p.name, "\", \"address\": \"", dialed(p.name),
                                 "\", \"hosts\": [", hosts, "}]}"));
  }
  std::ofstream(cluster_file_) << absl::StrCat(
      "{\"router\": {\"address\": \"", dialed("router"), "\"}, \"orchestrator\": {\"address\": \"",
      address("orchestrator"), "\"}, \"pools\": [", absl::StrJoin(pools, ", "), "]}\n");
  for (const PoolLayout& p : options_.pools) {
    if (p.join) continue;
    if (absl::Status s = Spawn(p.name); !s.ok()) return s;
  }
  if (absl::Status s = Spawn("router"); !s.ok()) return s;
  if (absl::Status s = Spawn("orchestrator"); !s.ok()) return s;
  for (const auto& [name, pid] : pid_) {
    if (absl::Status s = WaitServing(name); !s.ok()) return s;
  }
  return WaitPoolsHealthy();
}

absl::Status Cluster::WaitPoolsHealthy() {
  // The router routes only to pools its own health checks have seen answer: a test's first
  // request must not race them.
  auto router = moe::v1::Router::NewStub(Dial("router"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::string last;
  while (std::chrono::steady_clock::now() < deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    moe::v1::Placement placement;
    const grpc::Status st = router->GetPlacement(&ctx, moe::v1::GetPlacementRequest(), &placement);
    std::set<std::string> healthy;
    for (const moe::v1::PoolInfo& p : placement.pools()) {
      if (p.healthy()) healthy.insert(p.name());
    }
    last = st.ok() ? absl::StrCat(healthy.size(), " healthy") : st.error_message();
    bool all = st.ok();
    for (const PoolLayout& p : options_.pools) all &= p.join || healthy.count(p.name) > 0;
    if (all) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("the router saw not every pool healthy within 30 s (last: ", last, ")"));
}

absl::Status Cluster::Spawn(const std::string& name) {
  std::string binary;
  std::vector<std::string> argv;
  if (name == "router") {
    binary = BuildDir() + "/services/router/moe-router";
  } else if (name == "orchestrator") {
    binary = BuildDir() + "/services/orchestrator/moe-orchestrator";
  } else {
    binary = BuildDir() + "/services/expert_pool/moe-expert-pool";
    argv.push_back("--pool=" + name);
  }
  argv.insert(argv.begin(), binary);
  argv.push_back("--listen=" + address(name));
  if (options_.metrics)
    argv.push_back(absl::StrCat("--metrics_listen=127.0.0.1:", metrics_port_[name]));
  argv.push_back("--cluster=" + cluster_file_);
  for (const std::string& a : options_.model_args) argv.push_back(a);
  if (auto f = frames_advertised_.find(name); f != frames_advertised_.end()) {
    argv.push_back(absl::StrCat("--frames_listen=127.0.0.1:", frames_port_[name]));
    argv.push_back("--frames_advertise=" + f->second);
  }
  if (name == "orchestrator") {
    // Its HTTP API on a free port, not the fixed default: tests run side by side. A test that
    // wants a known port gives --http_listen in orchestrator_args (the last one counts).
    argv.push_back("--http_listen=127.0.0.1:0");
    for (const std::string& a : options_.orchestrator_args) argv.push_back(a);
  }
  if (name == "router") {
    for (const std::string& a : options_.router_args) argv.push_back(a);
  }
  for (const PoolLayout& p : options_.pools) {
    if (p.name == name && p.join) argv.push_back("--join=" + address("router"));
  }
  for (const std::string& a : TlsFlags(name)) argv.push_back(a);
  pid_[name] = SpawnProcess(argv, dir_ + "/" + name + ".log");
  return pid_[name] > 0 ? absl::OkStatus() : absl::InternalError("fork failed");
}

absl::Status Cluster::WaitServing(const std::string& name) {
  // A fresh channel (with its own subchannel) after each failed attempt, as moectl health does:
  // one whose first attempts found no listener can stay in its connect backoff long after.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::unique_ptr<grpc::health::v1::Health::Stub> stub;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (waitpid(pid_[name], &status, WNOHANG) == pid_[name]) {
      pid_[name] = 0;
      return absl::InternalError(absl::StrCat(name, " exited during start:\n", Log(name)));
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    grpc::health::v1::HealthCheckResponse resp;
    if (stub == nullptr) {
      stub = grpc::health::v1::Health::NewStub(
          grpc::CreateCustomChannel(address(name), ClientCredentials(), args));
    }
    const grpc::Status st = stub->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp);
    if (st.ok() && resp.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      return absl::OkStatus();
    }
    if (!st.ok()) stub.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat(name, " not SERVING in 60 s:\n", Log(name)));
}

void Cluster::Kill(const std::string& name) {
  if (pid_[name] <= 0) return;
  kill(pid_[name], SIGKILL);
  int status;
  waitpid(pid_[name], &status, 0);
  pid_[name] = 0;
}

void Cluster::Signal(const std::string& name, int sig) {
  if (pid_[name] > 0) kill(pid_[name], sig);
}

absl::Status Cluster::Restart(const std::string& name) {
  Kill(name);
  if (absl::Status s = Spawn(name); !s.ok()) return s;
  return WaitServing(name);
}

}  // namespace moe::testing
