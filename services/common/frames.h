// Frames: the cluster's two hot messages (Route, Forward) as length-prefixed bytes on a plain TCP
// connection, beside gRPC. A gRPC message on a stream costs both ends HTTP/2 framing, a hand-off
// between gRPC's threads and the caller's, and several wake-ups; a frame costs one write and one
// read on each end. The server reads, computes and answers on one thread per connection; the
// client (the orchestrator's lane thread) writes its messages and polls their sockets itself.
//
// On the wire (little-endian):
//   hello, client to server, once:  "MOEF" u8 version=1, u8 0, u16 n, the method's n bytes
//   request:                        u32 n, n bytes (a serialized request)
//   answer:                         u32 n, u32 code (a grpc::StatusCode), n bytes: the
//                                   serialized response if code is 0, else the error message
// One request is outstanding per connection; answers come in order. An error answer leaves the
// connection open. A hello that names another method gets an UNIMPLEMENTED answer and the
// connection is closed; so is one whose request is larger than the server's limit
// (RESOURCE_EXHAUSTED).
//
// Plaintext only: services with TLS offer no frames, and an orchestrator with TLS uses none.
#ifndef MOE_SERVICES_COMMON_FRAMES_H_
#define MOE_SERVICES_COMMON_FRAMES_H_

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace moe {

inline constexpr int kDefaultMaxFrameBytes = 64 << 20;  // as gRPC's message limit (server.h)

class FrameServer {
 public:
  // Computes one answer: the serialized response in `*response`, or an error.
  using Handler = std::function<absl::Status(absl::string_view request, std::string* response)>;

  // Listens on `listen` (HOST:PORT; port 0 picks a free one; an empty host or 0.0.0.0 is every
  // IPv4 interface) for connections that name `method` in their hello.
  static absl::StatusOr<std::unique_ptr<FrameServer>> Start(
      const std::string& listen, std::string method, Handler handler,
      int max_frame_bytes = kDefaultMaxFrameBytes);
  // Close(), then waits for every connection's thread.
  ~FrameServer();
  FrameServer(const FrameServer&) = delete;
  FrameServer& operator=(const FrameServer&) = delete;

  int port() const { return port_; }
  const std::string& method() const { return method_; }
  // Stops accepting; every connection ends once the message it is computing (if any) has been
  // answered, as gRPC's message streams do on shutdown.
  void Close();
  int open_connections() const;

 private:
  struct Connection {
    int fd = -1;
    bool done = false;
    std::thread thread;
  };
  FrameServer(int listen_fd, int port, std::string method, Handler handler, int max_frame_bytes);
  void AcceptLoop();
  void Serve(Connection* c);
  // Joins the threads of connections that have ended.
  void Reap() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int listen_fd_;
  const int port_;
  const std::string method_;
  const Handler handler_;
  const int max_frame_bytes_;
  std::thread acceptor_;
  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::list<Connection> connections_ ABSL_GUARDED_BY(mu_);
};

// The address to dial for frames a service advertised: `advertised` as it is, or, when it is
// ":PORT", the host of `dialed` (the gRPC address the caller reached the service at) with PORT.
absl::StatusOr<std::string> FrameAddressFor(absl::string_view advertised, absl::string_view dialed);

// The client end of one connection. Not thread-safe.
class FrameConnection {
 public:
  // Connects to `address` (HOST:PORT; HOST a name or an IP literal) within `timeout` and sends
  // the hello for `method`. Writes give up after `send_timeout` (a peer that stopped reading).
  static absl::StatusOr<std::unique_ptr<FrameConnection>> Connect(const std::string& address,
                                                                  absl::string_view method,
                                                                  absl::Duration timeout,
                                                                  absl::Duration send_timeout);
  ~FrameConnection();
  FrameConnection(const FrameConnection&) = delete;
  FrameConnection& operator=(const FrameConnection&) = delete;

  int fd() const { return fd_; }
  // Writes one request frame, whole.
  absl::Status Send(absl::string_view payload);

  enum class Progress { kMore, kAnswered, kBroken };
  // Reads whatever has arrived, without blocking. kAnswered: code() and payload() hold the
  // answer. kBroken: the connection is unusable (error() says why).
  Progress ReadAvailable();
  int code() const { return code_; }
  const std::string& payload() const { return payload_; }
  const std::string& error() const { return error_; }

 private:
  explicit FrameConnection(int fd) : fd_(fd) {}
  const int fd_;
  char header_[8];
  int header_have_ = 0;
  int code_ = 0;
  std::string payload_;
  size_t payload_have_ = 0;
  std::string error_;
};

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_FRAMES_H_
