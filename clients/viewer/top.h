// `viewer top`: the terminal dashboard, fed by a live cluster's WatchRouting or a replayed trace.
// Redraws in place on the alternate screen; keys are read in raw mode ('q' quits); Ctrl-C and
// the other stop signals end it cleanly with the terminal restored. Not thread-safe: one
// dashboard per process, run from the main thread.
#ifndef MOE_CLIENTS_VIEWER_TOP_H_
#define MOE_CLIENTS_VIEWER_TOP_H_

#include <cstdio>

#include "absl/status/status.h"
#include "clients/viewer/dashboard_model.h"
#include "clients/viewer/event_source.h"
#include "clients/viewer/options.h"

namespace moe::viewer {

// Where the dashboard draws and reads keys; tests point it at a file.
struct TopIo {
  std::FILE* out = stdout;
  int in_fd = 0;             // keys ('q'), when a terminal; -1 = none
  bool interactive = false;  // alternate screen and in-place redraws; else one frame at the end
  bool color = false;
  int width = 0;   // 0 = the terminal's (TIOCGWINSZ on `out`), else 100
  int height = 0;  // 0 = the terminal's, else 30
};

// Draws until 'q', a stop signal (REQUIRES: BlockStopSignals() was called), the end of the
// source, or options.duration_s. A source that fails before its first event is an error; one
// that ends later (the cluster went away, the trace is over) is a normal end, noted on stderr.
absl::Status RunTop(const TopOptions& options, EventSource& source, DashboardModel& model,
                    const TopIo& io);

// The whole subcommand: validates, connects (GetModelInfo for the name and layout) or reads the
// trace, and runs the dashboard on this process's terminal.
absl::Status TopCommand(const TopOptions& options);

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_TOP_H_
