// Where the dashboard, the recorder and the web page's live view get RoutingEvents: a live
// cluster (WatchRouting) or a recorded trace replayed at its own pace. Both look the same to the
// consumer, which is how every mode can replay a trace.
#ifndef MOE_CLIENTS_VIEWER_EVENT_SOURCE_H_
#define MOE_CLIENTS_VIEWER_EVENT_SOURCE_H_

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "clients/viewer/options.h"
#include "clients/viewer/stream_mux.h"
#include "moe/v1/events.pb.h"
#include "moe/v1/orchestrator.grpc.pb.h"

namespace moe::viewer {

// A stream of RoutingEvents. Next from one consumer thread; Cancel from any thread.
class EventSource {
 public:
  virtual ~EventSource() = default;
  // Waits up to `timeout` for the next event. kEnd once the source is exhausted or cancelled.
  virtual PopResult Next(absl::Duration timeout, moe::v1::RoutingEvent* event) = 0;
  // After kEnd: why it ended (OK for a trace's end, a cancel, or a clean end of the streams).
  virtual absl::Status status() const = 0;
  virtual void Cancel() = 0;
};

// Subscribes to the orchestrator's WatchRouting: one stream of token (and request) events with
// options.sample_rate, and when options.snapshot_interval_ms > 0 a second one of load snapshots.
// Each event's `dropped` is rewritten to the sum over both subscriptions, so it stays one
// cumulative counter. `stub` must outlive the source. `deadline`: of both calls.
std::unique_ptr<EventSource> WatchCluster(moe::v1::Orchestrator::Stub* stub,
                                          const WatchOptions& options, absl::Time deadline);

// Replays `events` with their recorded spacing (time_unix_micros) divided by `speed`; gaps are cut
// to `max_gap` so an idle stretch of a recording does not stall the replay; speed 0 = no pacing.
// With `loop`, starts over after the last event (one max_gap later) until cancelled.
std::unique_ptr<EventSource> ReplayEvents(
    std::shared_ptr<const std::vector<moe::v1::RoutingEvent>> events, double speed, bool loop,
    absl::Duration max_gap = absl::Seconds(2));

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_EVENT_SOURCE_H_
