// The options of the viewer's subcommands as plain structs, named like the flags they come from,
// with validators whose errors name the flag to fix ("--sample_rate: must be in (0, 1], got 0").
// main.cc fills them from flags; tests build them directly. Pure functions; thread-safe.
#ifndef MOE_CLIENTS_VIEWER_OPTIONS_H_
#define MOE_CLIENTS_VIEWER_OPTIONS_H_

#include <grpcpp/security/credentials.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "clients/viewer/render/flow_gif.h"

namespace moe::viewer {

// What every live subscription to WatchRouting asks for.
struct WatchOptions {
  std::vector<int> layers;         // --layers: only these layers; empty = all
  double sample_rate = 1.0;        // --sample_rate: fraction of token events kept, in (0, 1]
  int snapshot_interval_ms = 500;  // --snapshot_interval_ms: load snapshots; 0 = none
  bool include_probs = false;      // --include_probs
  std::string request_id;          // --request_id: only this request's events; empty = all
};

struct ServeOptions {
  std::string listen = "127.0.0.1:8080";  // --listen: HTTP address, HOST:PORT (port 0 = any)
  std::string target;                     // --target: orchestrator HOST:PORT
  std::string router;                     // --router: router HOST:PORT; empty = no /api/policy
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // --tls_*: null = plaintext
  std::string trace;        // --trace: replay this file instead of --target
  std::string web_root;     // --web_root: the page's files (resolved, see web_root.h)
  WatchOptions watch;       // what /api/events subscribes to
  double speed = 1.0;       // --speed: trace replay speed, > 0 (it loops)
  int http_threads = 32;    // --http_threads: each open event stream holds one
  double deadline_s = 300;  // --deadline_s: deadline of one generation
};

struct TopOptions {
  std::string target;                                     // --target
  std::string trace;                                      // --trace: replay instead of --target
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // --tls_*: null = plaintext
  WatchOptions watch;          // --layers, --sample_rate, --snapshot_interval_ms
  double duration_s = 0;       // --duration_s: exit after this long; 0 = until 'q' or the end
  double speed = 1.0;          // --speed: trace replay speed; 0 = no pacing
  std::string color = "auto";  // --color: auto | always | never
};

struct RecordOptions {
  std::string target;                                     // --target
  std::string out;                                        // --out: the trace file to write
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // --tls_*: null = plaintext
  WatchOptions watch;      // --layers, --sample_rate, --snapshot_interval_ms, ...
  double duration_s = 0;   // --duration_s: stop after this long; 0 = no limit
  int64_t max_events = 0;  // --max_events: stop after this many events; 0 = no limit
};

struct GifCommandOptions {
  GifOptions gif;      // --out, --frames, --fps, --dot_period, --width, --height, --seed
  std::string trace;   // --trace: render a recorded trace
  std::string target;  // --target: or run a generation live
  std::string prompt;  // --prompt: live: the prompt (its tokens are animated too)
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // --tls_*: null = plaintext
  int layer = 0;                        // --layer: the MoE layer whose routing is drawn
  std::string request_id;               // --request_id: trace: only this request; empty = all
  int max_tokens = 24;                  // --max_tokens: live: tokens to generate
  double temperature = 0.0;             // --temperature: live; 0 = greedy, the same GIF every run
  std::optional<uint64_t> sample_seed;  // --sample_seed: live sampling seed; unset = server's
  int png_frame = -1;                   // --png_frame: >= 0: write this one frame as a PNG instead
  double deadline_s = 300;              // --deadline_s: live: deadline of the generation
};

// "0-3,6" or "0,1,2" -> {0, 1, 2, 3, 6}, sorted and unique; "" or "all" -> {}. Errors name `flag`.
absl::StatusOr<std::vector<int>> ParseIntList(absl::string_view text, absl::string_view flag);

// OK when `address` is HOST:PORT with a port in [0, 65535] (HOST may be empty only if
// allow_empty_host, "[v6]" allowed). Errors name `flag`.
absl::Status ValidateHostPort(absl::string_view address, absl::string_view flag,
                              bool allow_empty_host);

absl::Status ValidateWatchOptions(const WatchOptions& options);
absl::Status ValidateServeOptions(const ServeOptions& options);
absl::Status ValidateTopOptions(const TopOptions& options);
absl::Status ValidateRecordOptions(const RecordOptions& options);
absl::Status ValidateGifCommandOptions(const GifCommandOptions& options);

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_OPTIONS_H_
