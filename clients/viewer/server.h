// The `viewer serve` HTTP server: the web page's static files and the JSON / server-sent-events
// API it calls (clients/viewer/web/api.js; the routes are listed in the README), over CivetWeb,
// fed by a live cluster (--target, --router) or a replayed trace (--trace).
//
// Every request body is capped at 64 KiB. A streaming response (/api/generate, /api/events) holds
// one CivetWeb worker thread while it lasts; it writes a keep-alive comment every second when
// idle, so a client that went away is noticed and its gRPC streams are cancelled.
//
// Thread-safety: CivetWeb calls the handlers from its worker threads; everything they share is
// immutable after Start or thread-safe. Stop and the destructor from any one thread.
#ifndef MOE_CLIENTS_VIEWER_SERVER_H_
#define MOE_CLIENTS_VIEWER_SERVER_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "clients/viewer/cluster_client.h"
#include "clients/viewer/options.h"
#include "clients/viewer/trace.h"

struct mg_connection;
struct mg_context;

namespace moe::viewer {

inline constexpr size_t kMaxRequestBodyBytes = 64 * 1024;

class ViewerServer {
 public:
  // Validates `options`, reads the trace when replaying (--trace), checks that the web root holds
  // index.html, and starts listening. Errors name the flag to fix; a busy port is Unavailable.
  static absl::StatusOr<std::unique_ptr<ViewerServer>> Start(const ServeOptions& options);

  ViewerServer(const ViewerServer&) = delete;
  ViewerServer& operator=(const ViewerServer&) = delete;
  ~ViewerServer();  // Stop()

  // The port listened on (the real one when --listen asked for port 0).
  int port() const { return port_; }

  // Ends the open event streams (each within a second), cancels their gRPC calls and stops
  // listening; CivetWeb's listener polls every two seconds, so this takes up to about that long.
  // Idempotent.
  void Stop();

 private:
  explicit ViewerServer(const ServeOptions& options);

  // CivetWeb's request handler; `self` is the server. Returns the HTTP status sent.
  static int HandleRequest(mg_connection* conn, void* self);
  int Dispatch(mg_connection* conn);

  int ServeStatic(mg_connection* conn, absl::string_view path, bool head);
  int ServeInfo(mg_connection* conn);
  int ServeGetPolicy(mg_connection* conn);
  int ServeSetPolicy(mg_connection* conn);
  int ServeGenerate(mg_connection* conn);
  int ServeEvents(mg_connection* conn);

  // /api/info of a replayed trace: its header, or the inferred layout.
  moe::v1::ModelInfo TraceModelInfo() const;

  const ServeOptions options_;
  std::unique_ptr<ClusterClient> cluster_;  // null when replaying a trace
  std::shared_ptr<const std::vector<moe::v1::RoutingEvent>> trace_events_;
  std::optional<TraceHeader> trace_header_;
  std::optional<ModelLayout> trace_layout_;
  mg_context* context_ = nullptr;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
};

// The whole subcommand: resolves the web root (web_root.h: options.web_root is the --web_root
// flag, then $MOE_VIEWER_WEB_ROOT, the working directory and the executable's directory), starts
// the server, prints its URL, and serves until a stop signal (REQUIRES: BlockStopSignals() was
// called).
absl::Status ServeCommand(ServeOptions options);

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_SERVER_H_
