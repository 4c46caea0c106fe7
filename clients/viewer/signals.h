// Stop signals (SIGINT, SIGTERM, SIGHUP) for the viewer's long-running subcommands: blocked in
// every thread and collected synchronously, so gRPC and CivetWeb threads never run a handler and
// the main loop decides how to stop (restoring the terminal, closing a trace file).
#ifndef MOE_CLIENTS_VIEWER_SIGNALS_H_
#define MOE_CLIENTS_VIEWER_SIGNALS_H_

#include "absl/time/time.h"

namespace moe::viewer {

// Blocks the stop signals in the calling thread and the threads it starts later.
// REQUIRES: called in main before any thread starts (gRPC channels and CivetWeb start threads).
void BlockStopSignals();

// Waits up to `timeout` (zero: just looks) for a stop signal; returns it, or 0 if none came.
// REQUIRES: BlockStopSignals() was called.
int WaitStopSignal(absl::Duration timeout);

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_SIGNALS_H_
