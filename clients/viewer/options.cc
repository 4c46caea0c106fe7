#include "clients/viewer/options.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/common/host_port.h"
#include "services/common/id_list.h"

namespace moe::viewer {
namespace {

absl::Status Invalid(absl::string_view flag, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", what));
}

// Exactly one of a live target and a trace: the two sources of events.
absl::Status OneSource(absl::string_view target, absl::string_view trace) {
  if (target.empty() == trace.empty()) {
    return Invalid("--target", target.empty()
                                   ? "give --target=HOST:PORT (a cluster) or --trace=FILE"
                                   : "give --target or --trace, not both");
  }
  if (!target.empty()) return ValidateHostPort(target, "--target", /*allow_empty_host=*/false);
  return absl::OkStatus();
}

absl::Status NonNegative(double value, absl::string_view flag) {
  // !(>= 0) also refuses NaN.
  if (!(value >= 0)) return Invalid(flag, absl::StrCat("must be >= 0, got ", value));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<int>> ParseIntList(absl::string_view text, absl::string_view flag) {
  text = absl::StripAsciiWhitespace(text);
  if (text.empty() || text == "all") return std::vector<int>();
  return ParseIdList(text, flag, /*limit=*/0);
}

absl::Status ValidateHostPort(absl::string_view address, absl::string_view flag,
                              bool allow_empty_host) {
  absl::StatusOr<HostPort> hp = ParseHostPort(address, flag);
  if (!hp.ok()) return hp.status();
  if (hp->host.empty() && !allow_empty_host) {
    return Invalid(flag, absl::StrCat("\"", address, "\" has no host (want HOST:PORT)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateWatchOptions(const WatchOptions& options) {
  if (!(options.sample_rate > 0 && options.sample_rate <= 1)) {
    return Invalid("--sample_rate", absl::StrCat("must be in (0, 1], got ", options.sample_rate));
  }
  if (options.snapshot_interval_ms < 0) {
    return Invalid(
        "--snapshot_interval_ms",
        absl::StrCat("must be >= 0 (0 = no load snapshots), got ", options.snapshot_interval_ms));
  }
  for (int layer : options.layers) {
    if (layer < 0) return Invalid("--layers", absl::StrCat("layer ", layer, " is negative"));
  }
  return absl::OkStatus();
}

absl::Status ValidateServeOptions(const ServeOptions& options) {
  if (absl::Status s = ValidateHostPort(options.listen, "--listen", /*allow_empty_host=*/true);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = OneSource(options.target, options.trace); !s.ok()) return s;
  if (!options.router.empty()) {
    if (absl::Status s = ValidateHostPort(options.router, "--router", false); !s.ok()) return s;
  }
  if (absl::Status s = ValidateWatchOptions(options.watch); !s.ok()) return s;
  if (options.watch.snapshot_interval_ms == 0) {
    return Invalid("--snapshot_interval_ms", "must be > 0: the page's load bars need snapshots");
  }
  if (!(options.speed > 0)) {
    // The page's replay loops forever: without pacing it would spin a core.
    return Invalid("--speed", absl::StrCat("must be > 0 for serve, got ", options.speed));
  }
  if (options.http_threads < 2 || options.http_threads > 1024) {
    return Invalid("--http_threads",
                   absl::StrCat("must be in [2, 1024], got ", options.http_threads));
  }
  if (!(options.deadline_s > 0)) {
    return Invalid("--deadline_s", absl::StrCat("must be > 0, got ", options.deadline_s));
  }
  return absl::OkStatus();
}

absl::Status ValidateTopOptions(const TopOptions& options) {
  if (absl::Status s = OneSource(options.target, options.trace); !s.ok()) return s;
  if (absl::Status s = ValidateWatchOptions(options.watch); !s.ok()) return s;
  if (absl::Status s = NonNegative(options.duration_s, "--duration_s"); !s.ok()) return s;
  if (absl::Status s = NonNegative(options.speed, "--speed"); !s.ok()) return s;
  if (options.color != "auto" && options.color != "always" && options.color != "never") {
    return Invalid("--color",
                   absl::StrCat("must be auto, always or never, got \"", options.color, "\""));
  }
  return absl::OkStatus();
}

absl::Status ValidateRecordOptions(const RecordOptions& options) {
  if (options.target.empty()) return Invalid("--target", "required: the orchestrator HOST:PORT");
  if (absl::Status s = ValidateHostPort(options.target, "--target", false); !s.ok()) return s;
  if (options.out.empty()) return Invalid("--out", "required: the trace file to write");
  if (absl::Status s = ValidateWatchOptions(options.watch); !s.ok()) return s;
  if (absl::Status s = NonNegative(options.duration_s, "--duration_s"); !s.ok()) return s;
  if (options.max_events < 0) {
    return Invalid("--max_events", absl::StrCat("must be >= 0, got ", options.max_events));
  }
  return absl::OkStatus();
}

absl::Status ValidateGifCommandOptions(const GifCommandOptions& options) {
  if (options.gif.out.empty()) return Invalid("--out", "required: the GIF (or PNG) to write");
  if (absl::Status s = ValidateGifOptions(options.gif); !s.ok()) return s;
  if (options.target.empty() == options.trace.empty()) {
    return Invalid("--trace", options.target.empty()
                                  ? "give --trace=FILE, or --target=HOST:PORT with --prompt"
                                  : "give --trace or --target, not both");
  }
  if (!options.target.empty()) {
    if (absl::Status s = ValidateHostPort(options.target, "--target", false); !s.ok()) return s;
    if (options.prompt.empty()) return Invalid("--prompt", "required with --target");
    if (!(options.temperature >= 0)) {
      return Invalid("--temperature", absl::StrCat("must be >= 0, got ", options.temperature));
    }
    if (!(options.deadline_s > 0)) {
      return Invalid("--deadline_s", absl::StrCat("must be > 0, got ", options.deadline_s));
    }
  } else if (!options.prompt.empty()) {
    return Invalid("--prompt", "only with --target (a trace already holds its prompts)");
  }
  if (options.layer < 0)
    return Invalid("--layer", absl::StrCat("must be >= 0, got ", options.layer));
  if (options.png_frame >= options.gif.frames) {
    return Invalid("--png_frame", absl::StrCat("must be < --frames (", options.gif.frames,
                                               "), got ", options.png_frame));
  }
  return absl::OkStatus();
}

}  // namespace moe::viewer
