// viewer: watch a cluster's expert routing (see README.md).
//   viewer serve  --target=HOST:PORT [--router=HOST:PORT] [--listen=HOST:PORT]   web page
//   viewer top    --target=HOST:PORT | --trace=FILE                              terminal
//   viewer record --target=HOST:PORT --out=FILE [--duration_s=N | --max_events=N]
//   viewer gif    --out=FILE --trace=FILE | --target=HOST:PORT --prompt=TEXT
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "clients/viewer/gif_command.h"
#include "clients/viewer/options.h"
#include "clients/viewer/record.h"
#include "clients/viewer/server.h"
#include "clients/viewer/signals.h"
#include "clients/viewer/top.h"
#include "models/usage.h"
#include "services/common/tls.h"

ABSL_FLAG(std::string, target, "", "orchestrator address HOST:PORT");
ABSL_FLAG(std::string, trace, "", "trace file to replay instead of --target (top, serve, gif)");
ABSL_FLAG(std::string, listen, "127.0.0.1:8080", "serve: HTTP address HOST:PORT");
ABSL_FLAG(std::string, router, "", "serve: router HOST:PORT for /api/policy; empty = none");
ABSL_FLAG(std::string, web_root, "", "serve: the page's directory; default: see README");
ABSL_FLAG(int, http_threads, 32, "serve: HTTP worker threads (each open event stream holds one)");
ABSL_FLAG(double, deadline_s, 300, "serve, gif: deadline of one generation");
ABSL_FLAG(std::string, layers, "",
          "top, record, serve: only these layers, e.g. 0-3,6; empty = all");
ABSL_FLAG(double, sample_rate, -1,
          "fraction of token events kept, in (0, 1]; -1 = 0.25 for serve and top, 1 for record");
ABSL_FLAG(int, snapshot_interval_ms, 500, "load snapshot period; record: 0 = no snapshots");
ABSL_FLAG(bool, include_probs, false, "record, serve: ask for full gate probabilities");
ABSL_FLAG(std::string, request_id, "", "record, gif: only this request's events");
ABSL_FLAG(double, duration_s, 0, "top, record: stop after this many seconds; 0 = no limit");
ABSL_FLAG(int64_t, max_events, 0, "record: stop after this many events; 0 = no limit");
ABSL_FLAG(double, speed, 1.0, "trace replay speed (2 = twice as fast); 0 = no pacing");
ABSL_FLAG(std::string, color, "auto", "top: auto | always | never");
ABSL_FLAG(std::string, out, "", "record: trace file; gif: GIF (or PNG with --png_frame)");
ABSL_FLAG(std::string, prompt, "", "gif --target: the prompt to generate from");
ABSL_FLAG(int, max_tokens, 24, "gif --target: tokens to generate");
ABSL_FLAG(double, temperature, 0.0, "gif --target: sampling temperature; 0 = greedy");
ABSL_FLAG(int64_t, sample_seed, -1, "gif --target: sampling seed; -1 = the server's choice");
ABSL_FLAG(int, layer, 0, "gif: the MoE layer to draw");
ABSL_FLAG(int, frames, 120, "gif: frames, >= 1");
ABSL_FLAG(int, fps, 12, "gif: frames per second, in [1, 100]");
ABSL_FLAG(int, dot_period, 360, "gif: ms a packet takes to cross an arc");
ABSL_FLAG(int, frames_per_token, 0, "gif: frames per token; 0 = two packet crossings");
ABSL_FLAG(int, width, 900, "gif: image width in pixels");
ABSL_FLAG(int, height, 500, "gif: image height in pixels");
ABSL_FLAG(uint64_t, seed, 42, "gif: seed of the packet phase jitter");
ABSL_FLAG(int, png_frame, -1, "gif: >= 0 = write only this frame, as a PNG");

namespace moe::viewer {
namespace {

absl::StatusOr<WatchOptions> WatchFromFlags(double default_sample_rate) {
  WatchOptions w;
  absl::StatusOr<std::vector<int>> layers = ParseIntList(absl::GetFlag(FLAGS_layers), "--layers");
  if (!layers.ok()) return layers.status();
  w.layers = *layers;
  const double rate = absl::GetFlag(FLAGS_sample_rate);
  w.sample_rate = rate == -1 ? default_sample_rate : rate;
  w.snapshot_interval_ms = absl::GetFlag(FLAGS_snapshot_interval_ms);
  w.include_probs = absl::GetFlag(FLAGS_include_probs);
  w.request_id = absl::GetFlag(FLAGS_request_id);
  return w;
}

absl::Status Run(const std::string& command) {
  absl::StatusOr<TlsConfig> tls = TlsFromFlags();
  if (!tls.ok()) return tls.status();
  const std::shared_ptr<grpc::ChannelCredentials> credentials = ChannelCredentials(*tls);
  if (command == "serve") {
    ServeOptions o;
    absl::StatusOr<WatchOptions> w = WatchFromFlags(0.25);
    if (!w.ok()) return w.status();
    o.watch = *w;
    o.listen = absl::GetFlag(FLAGS_listen);
    o.target = absl::GetFlag(FLAGS_target);
    o.credentials = credentials;
    o.router = absl::GetFlag(FLAGS_router);
    o.trace = absl::GetFlag(FLAGS_trace);
    o.web_root = absl::GetFlag(FLAGS_web_root);
    o.speed = absl::GetFlag(FLAGS_speed);
    o.http_threads = absl::GetFlag(FLAGS_http_threads);
    o.deadline_s = absl::GetFlag(FLAGS_deadline_s);
    return ServeCommand(o);
  }
  if (command == "top") {
    TopOptions o;
    absl::StatusOr<WatchOptions> w = WatchFromFlags(0.25);
    if (!w.ok()) return w.status();
    o.watch = *w;
    o.target = absl::GetFlag(FLAGS_target);
    o.credentials = credentials;
    o.trace = absl::GetFlag(FLAGS_trace);
    o.duration_s = absl::GetFlag(FLAGS_duration_s);
    o.speed = absl::GetFlag(FLAGS_speed);
    o.color = absl::GetFlag(FLAGS_color);
    return TopCommand(o);
  }
  if (command == "record") {
    RecordOptions o;
    absl::StatusOr<WatchOptions> w = WatchFromFlags(1.0);
    if (!w.ok()) return w.status();
    o.watch = *w;
    o.target = absl::GetFlag(FLAGS_target);
    o.credentials = credentials;
    o.out = absl::GetFlag(FLAGS_out);
    o.duration_s = absl::GetFlag(FLAGS_duration_s);
    o.max_events = absl::GetFlag(FLAGS_max_events);
    return RecordCommand(o);
  }
  GifCommandOptions o;
  o.gif.out = absl::GetFlag(FLAGS_out);
  o.gif.frames = absl::GetFlag(FLAGS_frames);
  o.gif.fps = absl::GetFlag(FLAGS_fps);
  o.gif.dot_period = absl::GetFlag(FLAGS_dot_period);
  o.gif.frames_per_token = absl::GetFlag(FLAGS_frames_per_token);
  o.gif.width = absl::GetFlag(FLAGS_width);
  o.gif.height = absl::GetFlag(FLAGS_height);
  o.gif.seed = absl::GetFlag(FLAGS_seed);
  o.trace = absl::GetFlag(FLAGS_trace);
  o.target = absl::GetFlag(FLAGS_target);
  o.credentials = credentials;
  o.prompt = absl::GetFlag(FLAGS_prompt);
  o.layer = absl::GetFlag(FLAGS_layer);
  o.request_id = absl::GetFlag(FLAGS_request_id);
  o.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  o.temperature = absl::GetFlag(FLAGS_temperature);
  if (const int64_t seed = absl::GetFlag(FLAGS_sample_seed); seed >= 0) o.sample_seed = seed;
  o.png_frame = absl::GetFlag(FLAGS_png_frame);
  o.deadline_s = absl::GetFlag(FLAGS_deadline_s);
  return GifCommand(o);
}

}  // namespace
}  // namespace moe::viewer

int main(int argc, char** argv) {
  moe::InitUsage("viewer serve|top|record|gif [flags] (see clients/viewer/README.md)");
  const std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const std::string command = args.size() > 1 ? args[1] : "";
  if (command != "serve" && command != "top" && command != "record" && command != "gif") {
    std::fprintf(stderr, "usage: viewer serve|top|record|gif [flags] (viewer --help for flags)\n");
    return 2;
  }
  if (args.size() > 2) {
    std::fprintf(stderr, "viewer %s: unexpected argument \"%s\" (flags are --name=value)\n",
                 command.c_str(), args[2]);
    return 2;
  }
  // Before any thread starts, so that the stop signals reach the main loop alone. gif keeps the
  // default Ctrl-C (it has nothing to clean up).
  if (command != "gif") moe::viewer::BlockStopSignals();
  signal(SIGPIPE, SIG_IGN);  // a closed socket or pipe is an error return, not a death
  const absl::Status s = moe::viewer::Run(command);
  if (!s.ok()) {
    std::fprintf(stderr, "viewer %s: %s\n", command.c_str(), s.ToString().c_str());
    return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
