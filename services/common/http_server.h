// The tree's one HTTP server: /metrics of every service and the orchestrator's OpenAI-compatible
// API. Our own, because CivetWeb (prometheus-cpp's exposer) fails to start inside processes that
// load Debian's LibTorch.
//
// HTTP/1.1 with keep-alive. One thread accepts; each connection gets its own thread, at most
// `max_connections` at once (beyond that a client gets 503 and the connection closes), so a
// handler may block while it waits for its answer (a generation) without holding up others.
// Request bodies come with Content-Length only, and one larger than `max_body_bytes` is refused
// 413 before it is read. Responses are whole (Content-Length) or streamed in chunks (server-sent
// events), each chunk sent as it is written.
//
// Thread-safe. The destructor stops accepting, shuts every open connection down (handlers then
// see ClientGone) and waits for the handlers to return.
#ifndef MOE_SERVICES_COMMON_HTTP_SERVER_H_
#define MOE_SERVICES_COMMON_HTTP_SERVER_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace moe {

struct HttpRequest {
  std::string method;                                        // "GET", "POST", ...
  std::string path;                                          // without the query
  std::string query;                                         // after '?', undecoded
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  // The first header of that (lower-case) name, or null.
  const std::string* Header(absl::string_view name) const;
};

// How a handler answers: either Send once, or StartStream, then Write any number of times and
// End. Not thread-safe: used by the handler's own thread.
class HttpResponse {
 public:
  // The whole answer. Returns false when the client is gone.
  bool Send(int status, absl::string_view content_type, absl::string_view body);
  // Headers now; the body follows in chunks.
  bool StartStream(int status, absl::string_view content_type);
  bool Write(absl::string_view data);
  bool End();
  // True once the client has closed the connection or the server is shutting down. Never blocks.
  bool ClientGone() const;
  bool started() const { return started_; }

 private:
  friend class HttpServer;
  HttpResponse(int fd, bool keep_alive) : fd_(fd), keep_alive_(keep_alive) {}
  bool SendAll(absl::string_view data);
  int fd_;
  bool keep_alive_;
  bool started_ = false;
  bool chunked_ = false;
  bool failed_ = false;
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponse&)>;

struct HttpServerOptions {
  size_t max_body_bytes = 1 << 20;
  int max_connections = 256;
  absl::Duration idle_timeout = absl::Seconds(60);   // between requests on a kept-alive connection
  absl::Duration read_timeout = absl::Seconds(10);   // for the rest of a request once it began
  absl::Duration write_timeout = absl::Seconds(30);  // a client that reads nothing for this long
  // The body (and its content type) of the errors the server answers itself: 400 malformed
  // request, 411, 413, 503. Default: the message as text/plain.
  std::function<std::pair<std::string, std::string>(int status, absl::string_view message)>
      error_body;
};

class HttpServer {
 public:
  // Binds HOST:PORT (port 0 picks one) and starts serving. `flag` names the setting in errors.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& address,
                                                           absl::string_view flag,
                                                           HttpServerOptions options,
                                                           HttpHandler handler);
  ~HttpServer();
  int port() const { return port_; }

 private:
  struct Connection {
    int fd = -1;
    std::thread thread;
    std::atomic<bool> done{false};
  };
  HttpServer(int fd, int port, HttpServerOptions options, HttpHandler handler);
  void AcceptLoop();
  void Serve(Connection* conn);
  void SendError(int fd, int status, absl::string_view message);
  void ReapFinished() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int listen_fd_;
  const int port_;
  const HttpServerOptions options_;
  const HttpHandler handler_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  std::list<Connection> connections_ ABSL_GUARDED_BY(mu_);
  std::thread accept_thread_;
};

// The reason phrase of an HTTP status ("Not Found").
absl::string_view HttpReason(int status);

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_HTTP_SERVER_H_
