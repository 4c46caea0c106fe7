// Routing traces: what `viewer record` writes and `viewer gif|top|serve --trace` replay.
//
// Format: the 10 bytes "MOETRACE1\n", then the header as two length-delimited messages (a
// moe.v1.ModelInfo and a moe.v1.Placement, as the orchestrator reported them when recording
// started), then length-delimited moe.v1.RoutingEvent messages in arrival order (the
// SerializeDelimitedToOstream format: a varint byte length, then the message). A file without the
// magic is read as bare delimited RoutingEvents, so other tools can produce traces; its layout is
// then inferred from the events (InferLayout). The two cannot be confused: a RoutingEvent never
// starts with the byte 'O' (field 9, wire type 7 does not exist), which is what a bare file would
// have to hold after a first length byte of 'M'.
#ifndef MOE_CLIENTS_VIEWER_TRACE_H_
#define MOE_CLIENTS_VIEWER_TRACE_H_

#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "clients/viewer/render/flow_gif.h"
#include "moe/v1/events.pb.h"
#include "moe/v1/orchestrator.pb.h"
#include "moe/v1/placement.pb.h"

namespace moe::viewer {

inline constexpr char kTraceMagic[] = "MOETRACE1\n";
inline constexpr size_t kTraceMagicSize = sizeof(kTraceMagic) - 1;

struct TraceHeader {
  moe::v1::ModelInfo model;
  moe::v1::Placement placement;
};

struct Trace {
  std::optional<TraceHeader> header;  // absent for a bare file of events
  std::vector<moe::v1::RoutingEvent> events;
};

// Appends events to a new trace file. Not thread-safe; one writer per file.
class TraceWriter {
 public:
  // Creates (truncates) `path` and writes the magic and `header`, or with no header a bare file.
  static absl::StatusOr<std::unique_ptr<TraceWriter>> Create(const std::string& path,
                                                             const TraceHeader* header);

  absl::Status Write(const moe::v1::RoutingEvent& event);
  // Pushes buffered events to the file, so a reader (or a crash) sees them.
  absl::Status Flush();
  // Flushes and closes; later calls do nothing. The destructor closes too, ignoring errors.
  absl::Status Close();
  int64_t events_written() const { return events_written_; }

 private:
  explicit TraceWriter(std::string path) : path_(std::move(path)) {}
  absl::Status StreamError(const char* what);

  std::string path_;
  std::ofstream out_;
  int64_t events_written_ = 0;
};

// Reads a whole trace into memory. Errors name the file and, for a damaged event, its index:
// NotFound for a missing file, DataLoss for a truncated or unparsable message.
absl::StatusOr<Trace> ReadTrace(const std::string& path);

// What the renderers need to know about the model, and where it came from.
struct ModelLayout {
  FlowLayout flow;
  int n_layers = 0;
  std::string name;    // model name; empty when inferred
  std::string origin;  // "model info", "trace header" or "inferred from N events"
};

ModelLayout LayoutFromModelInfo(const moe::v1::ModelInfo& info);

// The layout implied by the events: n_experts * m from a LoadSnapshot's width when there is one
// (exact), else from the largest flat id chosen or the width of gate probabilities (a lower bound:
// experts never chosen at the top end are not seen); m from a choice of a base expert > 0 (id =
// expert * m + micro), else the largest micro id + 1; n_shared from the largest shared id; top_k
// from the most choices of one token in one layer; n_layers from the largest layer. NotFound when
// there is no token or load event.
absl::StatusOr<ModelLayout> InferLayout(absl::Span<const moe::v1::RoutingEvent> events);

// The header's layout if the trace has one, else InferLayout.
absl::StatusOr<ModelLayout> TraceLayout(const Trace& trace);

// What every mode's --trace flag needs: the trace and its layout; errors name the flag.
struct LoadedTrace {
  Trace trace;
  ModelLayout layout;
};
absl::StatusOr<LoadedTrace> LoadTraceFlag(const std::string& path);

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_TRACE_H_
