#include "services/common/frames.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/host_port.h"

namespace moe {
namespace {

constexpr char kMagic[4] = {'M', 'O', 'E', 'F'};
constexpr uint8_t kVersion = 1;
constexpr int kMaxMethodBytes = 256;
constexpr int kMaxConnections = 1024;
// grpc::StatusCode values, without pulling gRPC into this file.
constexpr uint32_t kUnimplemented = 12;
constexpr uint32_t kResourceExhausted = 8;

void PutU32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

// Reads exactly n bytes; false on end of stream or error.
bool ReadFull(int fd, char* p, size_t n) {
  while (n > 0) {
    const ssize_t got = ::recv(fd, p, n, 0);
    if (got > 0) {
      p += got;
      n -= static_cast<size_t>(got);
    } else if (got < 0 && errno == EINTR) {
      continue;
    } else {
      return false;
    }
  }
  return true;
}

// Writes the pieces whole, in one system call when the socket takes them (no SIGPIPE).
absl::Status WriteAll(int fd, iovec* iov, int count) {
  while (count > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(count);
    const ssize_t put = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (put < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return absl::DeadlineExceededError("the peer stopped reading (send timed out)");
      }
      return absl::UnavailableError(absl::StrCat("send: ", std::strerror(errno)));
    }
    size_t left = static_cast<size_t>(put);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return absl::OkStatus();
}

// One frame: its header (which starts with the payload's length), then the payload.
absl::Status WriteFrame(int fd, char* header, size_t header_bytes, absl::string_view payload) {
  PutU32(header, static_cast<uint32_t>(payload.size()));
  iovec iov[2] = {{header, header_bytes}, {const_cast<char*>(payload.data()), payload.size()}};
  return WriteAll(fd, iov, payload.empty() ? 1 : 2);
}

absl::Status WriteAnswer(int fd, uint32_t code, absl::string_view payload) {
  char header[8];
  PutU32(header + 4, code);
  return WriteFrame(fd, header, sizeof(header), payload);
}

std::string Unbracket(const std::string& host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

void NoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

}  // namespace

absl::StatusOr<std::unique_ptr<FrameServer>> FrameServer::Start(const std::string& listen,
                                                                std::string method, Handler handler,
                                                                int max_frame_bytes) {
  absl::StatusOr<HostPort> hp = ParseHostPort(listen, "frames listen address");
  if (!hp.ok()) return hp.status();
  const std::string host = IsWildcardHost(hp->host) ? "" : Unbracket(hp->host);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(hp->port);
  if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
      rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("frames listen address ", listen, ": ", ::gai_strerror(rc)));
  }
  std::string why = "no address";
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 128) != 0) {
      why = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("frames: cannot listen on ", listen, ": ", why));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int bound_port = bound.ss_family == AF_INET6
                             ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                             : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  std::unique_ptr<FrameServer> server(
      new FrameServer(fd, bound_port, std::move(method), std::move(handler), max_frame_bytes));
  server->acceptor_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  return server;
}

FrameServer::FrameServer(int listen_fd, int port, std::string method, Handler handler,
                         int max_frame_bytes)
    : listen_fd_(listen_fd),
      port_(port),
      method_(std::move(method)),
      handler_(std::move(handler)),
      max_frame_bytes_(max_frame_bytes) {}

FrameServer::~FrameServer() {
  Close();
  if (acceptor_.joinable()) acceptor_.join();
  ::close(listen_fd_);
  std::list<Connection> all;
  {
    absl::MutexLock lock(&mu_);
    all.swap(connections_);
  }
  for (Connection& c : all) c.thread.join();
}

void FrameServer::Close() {
  absl::MutexLock lock(&mu_);
  if (closed_) return;
  closed_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
  // A connection waiting for its next request reads end of stream now; one computing writes its
  // answer (the write side stays open) and then reads end of stream.
  for (Connection& c : connections_) {
    if (!c.done) ::shutdown(c.fd, SHUT_RD);
  }
}

int FrameServer::open_connections() const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const Connection& c : connections_) n += c.done ? 0 : 1;
  return n;
}

void FrameServer::Reap() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    if (it->done) {
      it->thread.join();  // it has left Serve's last lock: joins at once
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
}

void FrameServer::AcceptLoop() {
  for (;;) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    const int err = errno;  // before the lock, which may set it
    absl::MutexLock lock(&mu_);
    if (closed_) {
      if (fd >= 0) ::close(fd);
      return;
    }
    if (fd < 0) {
      // Only a listener that is gone ends the loop; anything else (a connection reset before it
      // was accepted, a protocol error, no memory or descriptors for now) is retried, a moment
      // later where waiting may help. Returning would leave connections queued unanswered.
      if (err == EBADF || err == EINVAL || err == ENOTSOCK) return;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        mu_.Unlock();
        absl::SleepFor(absl::Milliseconds(10));
        mu_.Lock();
      }
      continue;
    }
    Reap();
    if (static_cast<int>(connections_.size()) >= kMaxConnections) {
      ::close(fd);
      continue;
    }
    NoDelay(fd);
    connections_.emplace_back();
    Connection* c = &connections_.back();
    c->fd = fd;
    try {
      c->thread = std::thread([this, c] { Serve(c); });
    } catch (const std::system_error&) {  // no thread to be had now: refuse this connection
      ::close(fd);
      connections_.pop_back();
    }
  }
}

void FrameServer::Serve(Connection* c) {
  const int fd = c->fd;
  auto finish = [this, c, fd] {
    absl::MutexLock lock(&mu_);
    ::close(fd);
    c->done = true;
  };
  char hello[8];
  if (!ReadFull(fd, hello, sizeof(hello)) || std::memcmp(hello, kMagic, 4) != 0 ||
      static_cast<uint8_t>(hello[4]) != kVersion) {
    return finish();
  }
  const int method_len =
      static_cast<unsigned char>(hello[6]) | (static_cast<unsigned char>(hello[7]) << 8);
  std::string method(static_cast<size_t>(method_len), '\0');
  if (method_len > kMaxMethodBytes || !ReadFull(fd, method.data(), method.size())) {
    return finish();
  }
  if (method != method_) {
    (void)WriteAnswer(fd, kUnimplemented,
                      absl::StrCat("this port serves frames of ", method_, ", not ", method));
    return finish();
  }
  std::string request, response;
  for (;;) {
    char header[4];
    if (!ReadFull(fd, header, sizeof(header))) break;
    const uint32_t n = GetU32(header);
    if (n > static_cast<uint32_t>(max_frame_bytes_)) {
      (void)WriteAnswer(
          fd, kResourceExhausted,
          absl::StrCat("request of ", n, " bytes is over the limit of ", max_frame_bytes_));
      break;
    }
    request.resize(n);
    if (!ReadFull(fd, request.data(), n)) break;
    response.clear();
    const absl::Status s = handler_(request, &response);
    const absl::Status written =
        s.ok() ? WriteAnswer(fd, 0, response)
               : WriteAnswer(fd, static_cast<uint32_t>(s.code()), s.message());
    if (!written.ok()) break;
  }
  finish();
}

absl::StatusOr<std::string> FrameAddressFor(absl::string_view advertised,
                                            absl::string_view dialed) {
  if (advertised.empty() || advertised.front() != ':') return std::string(advertised);
  absl::StatusOr<HostPort> hp = ParseHostPort(dialed, "dialed address");
  if (!hp.ok()) return hp.status();
  return absl::StrCat(hp->host, advertised);
}

absl::StatusOr<std::unique_ptr<FrameConnection>> FrameConnection::Connect(
    const std::string& address, absl::string_view method, absl::Duration timeout,
    absl::Duration send_timeout) {
  absl::StatusOr<HostPort> hp = ParseHostPort(address, "frames address");
  if (!hp.ok()) return hp.status();
  if (IsWildcardHost(hp->host) || hp->port == 0) {
    return absl::InvalidArgumentError(absl::StrCat("frames address ", address, ": not dialable"));
  }
  if (method.size() > kMaxMethodBytes) return absl::InvalidArgumentError("frames: method too long");
  const std::string host = Unbracket(hp->host);
  const std::string port = std::to_string(hp->port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(absl::StrCat("frames: ", address, ": ", ::gai_strerror(rc)));
  }
  const absl::Time until = absl::Now() + timeout;
  std::string why = "no address";
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      const int ms =
          static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(until - absl::Now())));
      int ready;
      do {  // a signal is no timeout
        ready = ::poll(&p, 1, ms);
      } while (ready < 0 && errno == EINTR);
      rc = ready == 1 ? 0 : -1;
      int err = rc == 0 ? 0 : ETIMEDOUT;
      socklen_t len = sizeof(err);
      if (rc == 0) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      errno = err;
      rc = err == 0 ? 0 : -1;
    }
    if (rc != 0) {
      why = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("frames: connect ", address, ": ", why));
  // Blocking from here: writes block (up to the send timeout), reads never wait (MSG_DONTWAIT).
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  NoDelay(fd);
  const int64_t us = absl::ToInt64Microseconds(send_timeout);
  timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::unique_ptr<FrameConnection> c(new FrameConnection(fd));
  char hello[8];
  std::memcpy(hello, kMagic, 4);
  hello[4] = static_cast<char>(kVersion);
  hello[5] = 0;
  hello[6] = static_cast<char>(method.size() & 0xff);
  hello[7] = static_cast<char>(method.size() >> 8);
  iovec iov[2] = {{hello, sizeof(hello)}, {const_cast<char*>(method.data()), method.size()}};
  if (absl::Status s = WriteAll(fd, iov, 2); !s.ok()) return s;
  return c;
}

FrameConnection::~FrameConnection() { ::close(fd_); }

absl::Status FrameConnection::Send(absl::string_view payload) {
  header_have_ = 0;
  payload_.clear();
  payload_have_ = 0;
  char header[4];
  return WriteFrame(fd_, header, sizeof(header), payload);
}

FrameConnection::Progress FrameConnection::ReadAvailable() {
  for (;;) {
    ssize_t got;
    if (header_have_ < 8) {
      got = ::recv(fd_, header_ + header_have_, 8 - header_have_, MSG_DONTWAIT);
    } else {
      got = ::recv(fd_, payload_.data() + payload_have_, payload_.size() - payload_have_,
                   MSG_DONTWAIT);
    }
    if (got == 0) {
      error_ = "the peer closed the connection";
      return Progress::kBroken;
    }
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Progress::kMore;
      error_ = absl::StrCat("recv: ", std::strerror(errno));
      return Progress::kBroken;
    }
    if (header_have_ < 8) {
      header_have_ += static_cast<int>(got);
      if (header_have_ < 8) continue;
      const uint32_t n = GetU32(header_);
      if (n > static_cast<uint32_t>(kDefaultMaxFrameBytes)) {
        error_ = absl::StrCat("an answer of ", n, " bytes is over the limit");
        return Progress::kBroken;
      }
      payload_.resize(n);
      code_ = static_cast<int>(GetU32(header_ + 4));
      payload_have_ = 0;
    } else {
      payload_have_ += static_cast<size_t>(got);
    }
    if (header_have_ == 8 && payload_have_ == payload_.size()) return Progress::kAnswered;
  }
}

}  // namespace moe
