// Where the dashboard, the recorder and the web page's live view get RoutingEvents: a live
// cluster (WatchRouting) or a recorded trace replayed at its own pace. Both look the same to the
// consumer, which is how every mode can replay a trace.
#ifndef MOE_CLIENTS_VIEWER_EVENT_SOURCE_H_
#define MOE_CLIENTS_VIEWER_EVENT_SOURCE_H_

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
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

// The loop of the long-running subcommands (record, top): feeds the source's events to
// `on_event`, waking at least every 100 ms, until the source ends, `deadline` passes, a stop
// signal arrives (see signals.h) or `stop()` returns true. `tick(now)` runs before every wait
// (periodic flushes, redraws). Returns whether the source ended (then its status() says why), or
// the first error of `tick` or `on_event`. The caller cancels the source afterwards.
absl::StatusOr<bool> PumpEvents(
    EventSource& source, absl::Time deadline, const std::function<bool()>& stop,
    const std::function<absl::Status(absl::Time now)>& tick,
    const std::function<absl::Status(const moe::v1::RoutingEvent&)>& on_event);

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_EVENT_SOURCE_H_
