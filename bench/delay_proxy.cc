#include "bench/delay_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace moe::bench {
namespace {

using Clock = std::chrono::steady_clock;

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

void NoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

absl::StatusOr<sockaddr_in> ParseIpv4(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  int port = 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (colon == std::string::npos || !absl::SimpleAtoi(host_port.substr(colon + 1), &port) ||
      port <= 0 || port > 65535 ||
      inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("target: want IPv4 HOST:PORT, got \"", host_port, "\""));
  }
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

}  // namespace

// One direction of a connection: `from` is read as fast as it delivers, each chunk is stamped,
// and the writer sends it to `to` once its time has come.
struct DelayProxy::Link {
  struct Chunk {
    Clock::time_point due;
    std::string bytes;  // empty: the reader saw the end of the stream
  };
  int from, to;
  Clock::duration delay;
  absl::Mutex mu;
  std::deque<Chunk> queue ABSL_GUARDED_BY(mu);

  void Read() {
    std::string buf(1 << 16, '\0');
    for (;;) {
      const ssize_t n = ::read(from, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      Chunk c{Clock::now() + delay, n > 0 ? buf.substr(0, n) : std::string()};
      absl::MutexLock lock(&mu);
      queue.push_back(std::move(c));
      if (n <= 0) return;
    }
  }

  void Write() {
    for (;;) {
      Chunk c;
      {
        absl::MutexLock lock(&mu);
        mu.Await(absl::Condition(
            +[](std::deque<Chunk>* q) { return !q->empty(); }, &queue));
        c = std::move(queue.front());
        queue.pop_front();
      }
      if (c.bytes.empty()) {
        ::shutdown(to, SHUT_WR);  // pass the end of the stream on, after the bytes before it
        return;
      }
      std::this_thread::sleep_until(c.due);
      for (size_t off = 0; off < c.bytes.size();) {
        const ssize_t n = ::write(to, c.bytes.data() + off, c.bytes.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          // The peer is gone: end both directions so that both readers return.
          ::shutdown(to, SHUT_RDWR);
          ::shutdown(from, SHUT_RDWR);
          // Drain until the reader's end marker, so that the reader never blocks on us.
          for (;;) {
            absl::MutexLock lock(&mu);
            mu.Await(absl::Condition(
                +[](std::deque<Chunk>* q) { return !q->empty(); }, &queue));
            const bool end = queue.front().bytes.empty();
            queue.pop_front();
            if (end) return;
          }
        }
        off += static_cast<size_t>(n);
      }
    }
  }
};

absl::StatusOr<std::unique_ptr<DelayProxy>> DelayProxy::Start(const std::string& target,
                                                              absl::Duration delay) {
  absl::StatusOr<sockaddr_in> parsed = ParseIpv4(target);
  if (!parsed.ok()) return parsed.status();
  if (delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("delay: must be >= 0, got ", absl::FormatDuration(delay)));
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 64) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const absl::Status s = Errno("listen");
    ::close(fd);
    return s;
  }
  std::unique_ptr<DelayProxy> p(new DelayProxy(fd, ntohs(addr.sin_port), target, delay));
  p->acceptor_ = std::thread([raw = p.get()] { raw->AcceptLoop(); });
  return p;
}

DelayProxy::DelayProxy(int listen_fd, int port, std::string target, absl::Duration delay)
    : listen_fd_(listen_fd), port_(port), target_(std::move(target)), delay_(delay) {}

DelayProxy::~DelayProxy() { Stop(); }

std::string DelayProxy::address() const { return absl::StrCat("127.0.0.1:", port_); }

void DelayProxy::Stop() {
  if (stopping_.exchange(true)) return;
  ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
  if (acceptor_.joinable()) acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::thread> threads;
  std::vector<int> fds;
  {
    absl::MutexLock lock(&mu_);
    threads.swap(threads_);
    fds.swap(fds_);
  }
  for (int fd : fds) ::shutdown(fd, SHUT_RDWR);
  for (std::thread& t : threads) t.join();
  for (int fd : fds) ::close(fd);
}

void DelayProxy::AcceptLoop() {
  for (;;) {
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (stopping_) {
      if (client >= 0) ::close(client);
      return;
    }
    if (client < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;
    }
    Serve(client);
  }
}

void DelayProxy::Serve(int client) {
  const sockaddr_in addr = *ParseIpv4(target_);  // checked in Start
  const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (server < 0 ||
      ::connect(server, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    // The target is down: the client sees its connection closed, as it would see a refusal.
    if (server >= 0) ::close(server);
    ::close(client);
    return;
  }
  NoDelay(client);
  NoDelay(server);
  const auto delay = std::chrono::duration_cast<Clock::duration>(absl::ToChronoNanoseconds(delay_));
  // The links live as long as the proxy (a cluster's connections are few and long-lived).
  auto up = std::make_shared<Link>();
  auto down = std::make_shared<Link>();
  up->from = client, up->to = server, up->delay = delay;
  down->from = server, down->to = client, down->delay = delay;
  absl::MutexLock lock(&mu_);
  fds_.push_back(client);
  fds_.push_back(server);
  for (const auto& link : {up, down}) {
    threads_.emplace_back([link] { link->Read(); });
    threads_.emplace_back([link] { link->Write(); });
  }
}

}  // namespace moe::bench
