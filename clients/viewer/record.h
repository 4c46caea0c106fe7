// `viewer record`: saves a cluster's RoutingEvents to a trace file (format in trace.h) for `gif`,
// `top` and `serve` to replay. Not thread-safe; run from the main thread.
#ifndef MOE_CLIENTS_VIEWER_RECORD_H_
#define MOE_CLIENTS_VIEWER_RECORD_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "clients/viewer/event_source.h"
#include "clients/viewer/options.h"
#include "clients/viewer/trace.h"

namespace moe::viewer {

// Writes `header` (if not null) and then the events of `source` to options.out until
// options.max_events, options.duration_s, a stop signal (REQUIRES: BlockStopSignals() was
// called), or the source's end. Returns the number of events written. A source that fails before
// its first event is an error; the file is still left with what was written.
absl::StatusOr<int64_t> RunRecord(const RecordOptions& options, EventSource& source,
                                  const TraceHeader* header);

// The whole subcommand: validates, reads the header (GetModelInfo, GetPlacement), subscribes and
// records. Prints a one-line summary on stderr.
absl::Status RecordCommand(const RecordOptions& options);

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_RECORD_H_
