// A user-space TCP delay line for benchmarks: listens on a loopback port and forwards every
// connection to a target address, holding each chunk of bytes for a fixed delay in each
// direction, as a link between hosts in a data centre would. The kernel here has no netem; this
// stands in for `tc qdisc ... netem delay`.
//
// Bytes arrive in order and unchanged; only their timing moves. A chunk read at time t is written
// at t + delay (never earlier), so the proxy is a pure delay line, not a bandwidth limit: chunks
// read back to back leave back to back. Each connection uses four threads (a reader and a writer
// per direction); that is plenty for the handful of long-lived connections of a cluster.
//
// Thread-safe. Stop (or the destructor) closes the listener and every connection and joins every
// thread.
#ifndef MOE_BENCH_DELAY_PROXY_H_
#define MOE_BENCH_DELAY_PROXY_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace moe::bench {

class DelayProxy {
 public:
  // Listens on 127.0.0.1 (an ephemeral port) and forwards to `target` ("HOST:PORT", IPv4),
  // adding `delay` each way.
  static absl::StatusOr<std::unique_ptr<DelayProxy>> Start(const std::string& target,
                                                           absl::Duration delay);
  ~DelayProxy();
  DelayProxy(const DelayProxy&) = delete;
  DelayProxy& operator=(const DelayProxy&) = delete;

  // "127.0.0.1:PORT": what clients dial instead of the target.
  std::string address() const;
  void Stop();

 private:
  struct Link;  // one direction of one connection
  DelayProxy(int listen_fd, int port, std::string target, absl::Duration delay);
  void AcceptLoop();
  void Serve(int client_fd);

  const int listen_fd_;
  const int port_;
  const std::string target_;
  const absl::Duration delay_;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  absl::Mutex mu_;
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);  // every connection's sockets, shut down on Stop
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moe::bench

#endif  // MOE_BENCH_DELAY_PROXY_H_
