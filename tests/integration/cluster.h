// Test helper: a real cluster of router, expert pools and orchestrator as child processes on
// free loopback ports, with a generated cluster file. Not thread-safe.
#ifndef MOE_TESTS_INTEGRATION_CLUSTER_H_
#define MOE_TESTS_INTEGRATION_CLUSTER_H_

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace moe::testing {

// `n` ports free on 127.0.0.1 now, all different: the sockets that find them stay bound until
// every one is found (one at a time, the kernel may hand out a port it just gave back).
std::vector<int> FreePorts(int n);

struct PoolLayout {
  std::string name;
  std::string experts;  // "0-1", "all", ...
  std::string shared;   // "" or "all"
  // Not in the cluster file: started with --join (it announces itself to the router, hosting
  // nothing until a rebalance gives it experts), and only by StartPool, after Start.
  bool join = false;
};

struct ClusterOptions {
  std::vector<std::string> model_args;         // e.g. {"--model=models/brown-moe"}
  std::vector<std::string> orchestrator_args;  // extra flags for the orchestrator only
  std::vector<std::string> router_args;        // extra flags for the router only
  std::vector<PoolLayout> pools;
  bool metrics = false;
  // The address the cluster file gives for the router and each pool (what the others dial),
  // from the address it listens on; unset = the same. The delay bench puts a proxy there.
  std::function<std::string(const std::string& name, const std::string& listen)> advertise;
  // Mutual TLS on every hop (deploy/tls/make_certs.sh makes a CA and a certificate per process
  // and one for the test, "client"). Default: on when $MOE_TEST_TLS is 1, so a whole test binary
  // runs over mTLS by its environment alone.
  bool tls = TlsFromEnvironment();
  static bool TlsFromEnvironment();
};

// The benchmarks' cluster, as the local launcher lays it out for the shipped model: pool-a hosts
// experts 0-3 and the shared experts, pool-b experts 4-7; one intra-op thread per process.
ClusterOptions TwoPoolOptions(const std::string& model_dir);

class Cluster {
 public:
  explicit Cluster(ClusterOptions options);
  ~Cluster();

  // Writes the cluster file, starts every process and waits until all are SERVING.
  absl::Status Start();
  void Kill(const std::string& name);             // SIGKILL, as if the machine died
  void Signal(const std::string& name, int sig);  // e.g. SIGSTOP: a hung process
  absl::Status Restart(const std::string& name);  // start again on the same port
  // Starts a pool of options.pools that Start left out (join = true) and waits until SERVING.
  absl::Status StartPool(const std::string& name);

  std::string address(const std::string& name) const;  // "127.0.0.1:PORT"
  // A channel to a service as the test's client: with its certificate when options.tls.
  std::shared_ptr<grpc::Channel> Dial(const std::string& name) const;
  // The test client's credentials (plaintext without options.tls), and its --tls_* flags for a
  // client binary (moectl, viewer; empty without options.tls).
  std::shared_ptr<grpc::ChannelCredentials> ClientCredentials() const;
  std::vector<std::string> ClientTlsFlags() const;
  // Where the CA and certificates are (empty without options.tls).
  const std::string& tls_dir() const { return tls_dir_; }
  int metrics_port(const std::string& name) const;
  const std::string& cluster_file() const { return cluster_file_; }
  std::string Log(const std::string& name) const;

  static std::string BuildDir();
  static std::string SourceDir();
  // Runs a binary to completion; returns its exit code and combined output.
  static int RunToCompletion(const std::vector<std::string>& argv, std::string* output);

 private:
  absl::Status StartOnce();
  void AssignPorts();
  void StopAll();  // SIGTERM, then SIGKILL after 5 s
  absl::Status Spawn(const std::string& name);
  absl::Status WaitServing(const std::string& name);
  absl::Status WaitPoolsHealthy();  // as the router's placement reports them
  std::vector<std::string> TlsFlags(const std::string& name) const;  // a process's --tls_*

  ClusterOptions options_;
  std::string dir_;
  std::string cluster_file_;
  std::string tls_dir_;
  absl::Status tls_status_;  // of making and loading the certificates; Start returns it
  // The test client's, loaded once (plaintext without options.tls).
  std::shared_ptr<grpc::ChannelCredentials> client_credentials_ =
      grpc::InsecureChannelCredentials();
  std::map<std::string, int> port_, metrics_port_;
  std::map<std::string, int> frames_port_;
  std::map<std::string, std::string> frames_advertised_;  // with options_.advertise
  std::map<std::string, pid_t> pid_;
};

}  // namespace moe::testing

// Asserts that an absl::Status expression is OK and prints the status (a process's log, for
// Start/Restart) when it is not.
#define MOE_ASSERT_OK(expr)                                         \
  do {                                                              \
    const absl::Status moe_assert_ok_status = (expr);               \
    ASSERT_TRUE(moe_assert_ok_status.ok()) << moe_assert_ok_status; \
  } while (0)

#endif  // MOE_TESTS_INTEGRATION_CLUSTER_H_
