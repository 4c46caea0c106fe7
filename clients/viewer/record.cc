#include "clients/viewer/record.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "clients/viewer/cluster_client.h"

namespace moe::viewer {
namespace {

// Flushing this often bounds what a crash loses without a write per event.
constexpr absl::Duration kFlushInterval = absl::Seconds(1);
constexpr absl::Duration kLiveDeadline = absl::Hours(24);

}  // namespace

absl::StatusOr<int64_t> RunRecord(const RecordOptions& options, EventSource& source,
                                  const TraceHeader* header) {
  absl::StatusOr<std::unique_ptr<TraceWriter>> writer = TraceWriter::Create(options.out, header);
  if (!writer.ok()) return writer.status();
  const absl::Time deadline = options.duration_s > 0
                                  ? absl::Now() + absl::Seconds(options.duration_s)
                                  : absl::InfiniteFuture();
  absl::Time last_flush = absl::Now();
  absl::StatusOr<bool> ended = PumpEvents(
      source, deadline,
      [&] { return options.max_events > 0 && (*writer)->events_written() >= options.max_events; },
      [&](absl::Time now) {
        if (now - last_flush < kFlushInterval) return absl::OkStatus();
        last_flush = now;
        return (*writer)->Flush();
      },
      [&](const moe::v1::RoutingEvent& event) { return (*writer)->Write(event); });
  if (!ended.ok()) return ended.status();
  source.Cancel();
  if (absl::Status s = (*writer)->Close(); !s.ok()) return s;
  const int64_t written = (*writer)->events_written();
  if (*ended && !source.status().ok()) {
    if (written == 0) return source.status();
    std::fprintf(stderr, "viewer record: the event stream ended: %s\n",
                 source.status().ToString().c_str());
  }
  return written;
}

absl::Status RecordCommand(const RecordOptions& options) {
  if (absl::Status s = ValidateRecordOptions(options); !s.ok()) return s;
  ClusterClient client(options.target, "", options.credentials);
  TraceHeader header;
  absl::StatusOr<moe::v1::ModelInfo> info = client.GetModelInfo(absl::Seconds(10));
  if (!info.ok()) return info.status();
  header.model = *std::move(info);
  absl::StatusOr<moe::v1::Placement> placement = client.GetPlacement(absl::Seconds(10));
  if (placement.ok()) {
    header.placement = *std::move(placement);
  } else {
    std::fprintf(stderr, "viewer record: recording without placement: %s\n",
                 placement.status().ToString().c_str());
  }
  const absl::Duration life =
      options.duration_s > 0 ? absl::Seconds(options.duration_s + 10) : kLiveDeadline;
  std::unique_ptr<EventSource> source =
      WatchCluster(client.orchestrator(), options.watch, absl::Now() + life);
  const absl::Time start = absl::Now();
  absl::StatusOr<int64_t> written = RunRecord(options, *source, &header);
  if (!written.ok()) return written.status();
  std::fprintf(stderr, "viewer record: wrote %lld events to %s in %.1f s\n",
               static_cast<long long>(*written), options.out.c_str(),
               absl::ToDoubleSeconds(absl::Now() - start));
  return absl::OkStatus();
}

}  // namespace moe::viewer
