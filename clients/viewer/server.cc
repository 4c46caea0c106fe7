#include "clients/viewer/server.h"

#include <civetweb.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "clients/viewer/api_json.h"
#include "clients/viewer/event_source.h"
#include "clients/viewer/signals.h"
#include "clients/viewer/sse.h"
#include "clients/viewer/stream_mux.h"
#include "clients/viewer/web_root.h"
#include "nlohmann/json.hpp"
#include "services/common/host_port.h"

namespace moe::viewer {
namespace {

using nlohmann::json;

// How long a streaming response may stay silent before a keep-alive comment: a failed write is
// the only way to notice that the client went away.
constexpr absl::Duration kHeartbeat = absl::Seconds(1);
// A refused generation (bad parameters) fails within this long, and then answers with its HTTP
// status and JSON body; a slower first token commits to a 200 event stream.
constexpr absl::Duration kFirstTokenWait = absl::Seconds(1);
// Live event streams end after this long; EventSource reconnects on its own (retry below).
constexpr absl::Duration kWatchDeadline = absl::Hours(1);
constexpr int kReconnectMs = 2000;
constexpr absl::Duration kUnaryTimeout = absl::Seconds(10);

// Messages a generation may have in flight between gRPC and the socket.
constexpr size_t kGenerateQueue = 64;

bool Write(mg_connection* conn, absl::string_view data) {
  return data.empty() || mg_write(conn, data.data(), data.size()) == static_cast<int>(data.size());
}

int Respond(mg_connection* conn, int status, absl::string_view content_type, absl::string_view body,
            bool head = false, absl::string_view extra_headers = "") {
  const std::string headers = absl::StrFormat(
      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
      "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n%s\r\n",
      status, mg_get_response_code_text(conn, status), content_type, body.size(), extra_headers);
  if (Write(conn, headers) && !head) Write(conn, body);
  return status;
}

int RespondJson(mg_connection* conn, int status, const json& body) {
  return Respond(conn, status, "application/json", body.dump());
}

int RespondError(mg_connection* conn, const absl::Status& status, int http_status = 0) {
  return RespondJson(conn, http_status != 0 ? http_status : HttpStatusFor(status.code()),
                     ErrorJson(status));
}

int MethodNotAllowed(mg_connection* conn, absl::string_view method, absl::string_view path,
                     absl::string_view allow) {
  const absl::Status s = absl::InvalidArgumentError(
      absl::StrCat(method, " ", path, ": method not allowed (allowed: ", allow, ")"));
  return Respond(conn, 405, "application/json", ErrorJson(s).dump(), false,
                 absl::StrCat("Allow: ", allow, "\r\n"));
}

bool StartEventStream(mg_connection* conn) {
  return Write(conn,
               "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
               "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n");
}

// The request body, at most kMaxRequestBodyBytes. The int is the HTTP status of a failure.
std::pair<absl::StatusOr<std::string>, int> ReadBody(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  auto too_large = [](long long n) {
    return std::make_pair(absl::StatusOr<std::string>(absl::InvalidArgumentError(absl::StrCat(
                              "request body: ", n, " bytes or more, over the limit of ",
                              kMaxRequestBodyBytes, " bytes"))),
                          413);
  };
  if (ri->content_length > static_cast<long long>(kMaxRequestBodyBytes)) {
    return too_large(ri->content_length);
  }
  std::string body;
  char buf[8192];
  for (;;) {
    const int n = mg_read(conn, buf, sizeof(buf));
    if (n < 0) {
      return {absl::InvalidArgumentError("request body: read failed (client went away?)"), 400};
    }
    if (n == 0) break;
    body.append(buf, n);
    if (body.size() > kMaxRequestBodyBytes) return too_large(body.size());
  }
  return {std::move(body), 200};
}

int LogMessage(const mg_connection*, const char* message) {
  std::fprintf(stderr, "viewer: http: %s\n", message);
  return 1;
}

std::string CivetListen(const std::string& listen) {
  // CivetWeb binds every interface for a bare port; ":8080" means that too.
  if (!listen.empty() && listen[0] == ':') return listen.substr(1);
  return listen;
}

}  // namespace

ViewerServer::ViewerServer(const ServeOptions& options) : options_(options) {}

absl::StatusOr<std::unique_ptr<ViewerServer>> ViewerServer::Start(const ServeOptions& options) {
  if (absl::Status s = ValidateServeOptions(options); !s.ok()) return s;
  if (options.web_root.empty()) return absl::InvalidArgumentError("--web_root: required");
  if (!std::ifstream(options.web_root + "/index.html")) {
    return absl::NotFoundError(
        absl::StrCat("--web_root: ", options.web_root, " has no index.html"));
  }
  std::unique_ptr<ViewerServer> server(new ViewerServer(options));
  if (!options.trace.empty()) {
    absl::StatusOr<LoadedTrace> loaded = LoadTraceFlag(options.trace);
    if (!loaded.ok()) return loaded.status();
    Trace* trace = &loaded->trace;
    const ModelLayout* layout = &loaded->layout;
    server->trace_layout_ = *layout;
    server->trace_header_ = trace->header;
    server->trace_events_ =
        std::make_shared<const std::vector<moe::v1::RoutingEvent>>(std::move(trace->events));
  } else {
    server->cluster_ =
        std::make_unique<ClusterClient>(options.target, options.router, options.credentials);
  }

  static std::once_flag init_once;
  std::call_once(init_once, [] { mg_init_library(0); });
  const std::string listen = CivetListen(options.listen);
  const std::string threads = absl::StrCat(options.http_threads);
  const char* civet_options[] = {"listening_ports", listen.c_str(), "num_threads", threads.c_str(),
                                 "enable_keep_alive", "no",
                                 // Also the send timeout: a client that stops reading an event
                                 // stream for this long is dropped.
                                 "request_timeout_ms", "10000", nullptr};
  mg_callbacks callbacks = {};
  callbacks.log_message = LogMessage;
  mg_init_data init = {};
  init.callbacks = &callbacks;
  init.user_data = server.get();
  init.configuration_options = civet_options;
  unsigned error_code = 0;
  char error_text[256] = {};
  mg_error_data error = {};
  error.code = &error_code;
  error.text = error_text;
  error.text_buffer_size = sizeof(error_text);
  server->context_ = mg_start2(&init, &error);
  if (server->context_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("--listen=", options.listen, ": cannot start the HTTP server: ", error_text));
  }
  mg_set_request_handler(server->context_, "/", &ViewerServer::HandleRequest, server.get());
  mg_server_port ports[4] = {};
  if (mg_get_server_ports(server->context_, 4, ports) > 0) server->port_ = ports[0].port;
  return server;
}

ViewerServer::~ViewerServer() { Stop(); }

void ViewerServer::Stop() {
  stopping_ = true;
  if (context_ != nullptr) {
    // Waits for the workers; streaming handlers see stopping_ within one heartbeat.
    mg_stop(context_);
    context_ = nullptr;
  }
}

int ViewerServer::HandleRequest(mg_connection* conn, void* self) {
  return static_cast<ViewerServer*>(self)->Dispatch(conn);
}

int ViewerServer::Dispatch(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  const absl::string_view method = ri->request_method != nullptr ? ri->request_method : "";
  const absl::string_view path = ri->local_uri != nullptr ? ri->local_uri : "";
  const bool get = method == "GET";
  const bool post = method == "POST";
  if (path == "/api/info")
    return get ? ServeInfo(conn) : MethodNotAllowed(conn, method, path, "GET");
  if (path == "/api/policy") {
    if (get) return ServeGetPolicy(conn);
    if (post) return ServeSetPolicy(conn);
    return MethodNotAllowed(conn, method, path, "GET, POST");
  }
  if (path == "/api/generate") {
    return post ? ServeGenerate(conn) : MethodNotAllowed(conn, method, path, "POST");
  }
  if (path == "/api/events") {
    return get ? ServeEvents(conn) : MethodNotAllowed(conn, method, path, "GET");
  }
  if (absl::StartsWith(path, "/api/")) {
    return RespondError(conn, absl::NotFoundError(absl::StrCat(
                                  path, ": no such API (see clients/viewer/README.md)")));
  }
  if (path == "/healthz") {
    return get ? Respond(conn, 200, "text/plain", "ok\n")
               : MethodNotAllowed(conn, method, path, "GET");
  }
  if (get || method == "HEAD") return ServeStatic(conn, path, /*head=*/!get);
  return MethodNotAllowed(conn, method, path, "GET, HEAD");
}

int ViewerServer::ServeStatic(mg_connection* conn, absl::string_view path, bool head) {
  const std::optional<std::string> name = StaticFileName(path);
  std::string body;
  if (name.has_value()) {
    std::ifstream in(options_.web_root + "/" + *name, std::ios::binary);
    if (in) {
      std::ostringstream content;
      content << in.rdbuf();
      body = content.str();
      // Read per request, not cached: an edited page shows on reload.
      return Respond(conn, 200, *ContentTypeFor(*name), body, head);
    }
  }
  return Respond(conn, 404, "text/plain; charset=utf-8", absl::StrCat(path, ": not found\n"), head);
}

moe::v1::ModelInfo ViewerServer::TraceModelInfo() const {
  if (trace_header_.has_value() && trace_header_->model.n_experts() > 0) {
    return trace_header_->model;
  }
  moe::v1::ModelInfo info;
  info.set_name(absl::StrCat("trace ", options_.trace));
  info.set_n_layers(trace_layout_->n_layers);
  info.set_n_experts(trace_layout_->flow.n_experts);
  info.set_granularity(trace_layout_->flow.granularity);
  info.set_n_shared(trace_layout_->flow.n_shared);
  info.set_top_k(trace_layout_->flow.top_k);
  return info;
}

int ViewerServer::ServeInfo(mg_connection* conn) {
  if (cluster_ == nullptr) {
    const moe::v1::Placement* placement =
        trace_header_.has_value() ? &trace_header_->placement : nullptr;
    json out = InfoJson(TraceModelInfo(), placement,
                        absl::StrCat("trace ", options_.trace, " (", trace_layout_->origin, ")"));
    return RespondJson(conn, 200, out);
  }
  absl::StatusOr<moe::v1::ModelInfo> info = cluster_->GetModelInfo(kUnaryTimeout);
  if (!info.ok()) return RespondError(conn, info.status());
  // The page can work without placement; a failure shows as null plus the reason.
  absl::StatusOr<moe::v1::Placement> placement = cluster_->GetPlacement(kUnaryTimeout);
  json out = InfoJson(*info, placement.ok() ? &*placement : nullptr, cluster_->target());
  if (!placement.ok()) out["placement_error"] = std::string(placement.status().message());
  return RespondJson(conn, 200, out);
}

int ViewerServer::ServeGetPolicy(mg_connection* conn) {
  if (cluster_ == nullptr) {
    return RespondError(conn, absl::UnavailableError("replaying a trace: there is no router"));
  }
  absl::StatusOr<moe::v1::RoutingPolicy> policy = cluster_->GetPolicy(kUnaryTimeout);
  if (!policy.ok()) return RespondError(conn, policy.status());
  return RespondJson(conn, 200, ProtoToJson(*policy));
}

int ViewerServer::ServeSetPolicy(mg_connection* conn) {
  auto [body, http_status] = ReadBody(conn);
  if (!body.ok()) return RespondError(conn, body.status(), http_status);
  if (cluster_ == nullptr) {
    return RespondError(conn, absl::UnavailableError("replaying a trace: there is no router"));
  }
  // Check the body before asking the router, so a malformed one costs no call.
  if (absl::StatusOr<moe::v1::RoutingPolicy> check = ApplyPolicyBody(*body, {}); !check.ok()) {
    return RespondError(conn, check.status());
  }
  absl::StatusOr<moe::v1::RoutingPolicy> current = cluster_->GetPolicy(kUnaryTimeout);
  if (!current.ok()) return RespondError(conn, current.status());
  absl::StatusOr<moe::v1::RoutingPolicy> wanted = ApplyPolicyBody(*body, *current);
  if (!wanted.ok()) return RespondError(conn, wanted.status());
  absl::StatusOr<moe::v1::RoutingPolicy> now = cluster_->SetPolicy(*wanted, kUnaryTimeout);
  if (!now.ok()) return RespondError(conn, now.status());
  return RespondJson(conn, 200, ProtoToJson(*now));
}

int ViewerServer::ServeGenerate(mg_connection* conn) {
  auto [body, http_status] = ReadBody(conn);
  if (!body.ok()) return RespondError(conn, body.status(), http_status);
  absl::StatusOr<moe::v1::GenerateRequest> request = ParseGenerateBody(*body);
  if (!request.ok()) return RespondError(conn, request.status());
  if (cluster_ == nullptr) {
    return RespondError(
        conn, absl::UnavailableError(absl::StrCat("replaying the trace ", options_.trace,
                                                  ": generation needs a cluster (--target)")));
  }
  moe::v1::Orchestrator::Stub* stub = cluster_->orchestrator();
  StreamMux<moe::v1::GenerateRequest, moe::v1::GenerateResponse> mux(kGenerateQueue);
  mux.Add(*std::move(request), absl::Now() + absl::Seconds(options_.deadline_s),
          [stub](grpc::ClientContext* context, const moe::v1::GenerateRequest* r,
                 grpc::ClientReadReactor<moe::v1::GenerateResponse>* reactor) {
            stub->async()->Generate(context, r, reactor);
          });

  moe::v1::GenerateResponse message;
  PopResult r = mux.Pop(kFirstTokenWait, &message);
  if (r == PopResult::kEnd) {
    absl::Status s = mux.status();
    if (s.ok()) s = absl::InternalError("the orchestrator ended the generation without a token");
    return RespondError(conn, s);
  }
  if (!StartEventStream(conn)) {
    mux.Cancel();
    return 499;
  }
  GenerateSummary summary;
  for (;;) {
    if (stopping_) {
      mux.Cancel();
      Write(conn,
            SseEvent("error", ErrorJson(absl::UnavailableError("the viewer is stopping")).dump()));
      return 200;
    }
    bool ok = true;
    if (r == PopResult::kMessage) {
      if (summary.request_id.empty()) summary.request_id = message.request_id();
      if (!message.finish_reason().empty()) summary.finish_reason = message.finish_reason();
      if (message.seed() != 0) summary.seed = message.seed();
      ++(message.is_prompt() ? summary.prompt_tokens : summary.generated_tokens);
      ok = Write(conn, SseEvent("token", GenerateTokenJson(message).dump()));
    } else if (r == PopResult::kTimeout) {
      ok = Write(conn, SseComment("waiting"));
    } else {
      const absl::Status s = mux.status();
      Write(conn, s.ok() ? SseEvent("done", GenerateDoneJson(summary).dump())
                         : SseEvent("error", ErrorJson(s).dump()));
      return 200;
    }
    if (!ok) {
      // The client went away: stop generating for nobody. ~StreamMux waits for gRPC to finish.
      mux.Cancel();
      return 200;
    }
    r = mux.Pop(kHeartbeat, &message);
  }
}

int ViewerServer::ServeEvents(mg_connection* conn) {
  std::unique_ptr<EventSource> source =
      cluster_ != nullptr
          ? WatchCluster(cluster_->orchestrator(), options_.watch, absl::Now() + kWatchDeadline)
          : ReplayEvents(trace_events_, options_.speed, /*loop=*/true);
  if (!StartEventStream(conn) || !Write(conn, SseRetry(kReconnectMs))) {
    source->Cancel();
    return 200;
  }
  uint64_t dropped_sent = 0;
  moe::v1::RoutingEvent event;
  while (!stopping_) {
    const PopResult r = source->Next(kHeartbeat, &event);
    bool ok = true;
    if (r == PopResult::kTimeout) {
      ok = Write(conn, SseComment("idle"));
    } else if (r == PopResult::kEnd) {
      // The page's EventSource reconnects after `retry`. "error" would be taken for its own
      // connection-error event, hence the name.
      const absl::Status s = source->status();
      if (!s.ok()) Write(conn, SseEvent("watch_error", ErrorJson(s).dump()));
      break;
    } else {
      if (event.has_token()) {
        ok = Write(conn, SseEvent("token", LiveTokenJson(event).dump()));
      } else if (event.has_load()) {
        ok = Write(conn, SseEvent("load", LoadJson(event).dump()));
      } else if (event.has_started()) {
        ok = Write(conn, SseEvent("started", ProtoToJson(event.started()).dump()));
      } else if (event.has_finished()) {
        ok = Write(conn, SseEvent("finished", ProtoToJson(event.finished()).dump()));
      } else if (event.has_placement()) {
        ok = Write(conn, SseEvent("placement", ProtoToJson(event.placement().placement()).dump()));
      }
      if (ok && event.dropped() > dropped_sent) {
        dropped_sent = event.dropped();
        ok = Write(conn, SseEvent("dropped", json{{"dropped", dropped_sent}}.dump()));
      }
    }
    if (!ok) break;  // the browser went away
  }
  source->Cancel();  // the source's destructor then waits for gRPC to let go
  return 200;
}

absl::Status ServeCommand(ServeOptions options) {
  if (absl::Status s = ValidateServeOptions(options); !s.ok()) return s;
  const char* env = std::getenv("MOE_VIEWER_WEB_ROOT");
  std::error_code ec;
  const std::string cwd = std::filesystem::current_path(ec).string();
  absl::StatusOr<std::string> web_root =
      ResolveWebRoot(options.web_root, env != nullptr ? env : "", cwd, ExecutableDir());
  if (!web_root.ok()) return web_root.status();
  options.web_root = *web_root;
  absl::StatusOr<std::unique_ptr<ViewerServer>> server = ViewerServer::Start(options);
  if (!server.ok()) return server.status();
  // --listen was validated with the other options.
  const std::string host = ParseHostPort(options.listen, "--listen")->host;
  std::fprintf(stderr, "viewer: serving http://%s:%d/ (%s; page from %s)\n",
               IsWildcardHost(host) ? "127.0.0.1" : host.c_str(), (*server)->port(),
               options.trace.empty() ? absl::StrCat("cluster ", options.target,
                                                    options.router.empty()
                                                        ? ", no router"
                                                        : absl::StrCat(", router ", options.router))
                                           .c_str()
                                     : absl::StrCat("replaying ", options.trace).c_str(),
               options.web_root.c_str());
  const int sig = [] {
    for (;;) {
      if (const int s = WaitStopSignal(absl::Seconds(1)); s != 0) return s;
    }
  }();
  std::fprintf(stderr, "viewer: signal %d, stopping\n", sig);
  (*server)->Stop();
  return absl::OkStatus();
}

}  // namespace moe::viewer
