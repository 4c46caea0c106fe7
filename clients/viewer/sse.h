// Server-sent events framing (the text/event-stream format of the HTML standard) for the viewer's
// streaming endpoints. Pure functions; thread-safe.
#ifndef MOE_CLIENTS_VIEWER_SSE_H_
#define MOE_CLIENTS_VIEWER_SSE_H_

#include <string>

#include "absl/strings/string_view.h"

namespace moe::viewer {

// One event: "event: NAME\n", one "data: " line per line of `data`, then a blank line. Every line
// break in `data` ("\n", "\r\n" or a lone "\r", all line ends to a browser) starts a new data line,
// so the client's reassembly (lines joined by "\n") gets `data` back with "\n" line ends and no
// line can end the event early. Line breaks in `event` become spaces for the same reason.
std::string SseEvent(absl::string_view event, absl::string_view data);

// ": TEXT\n\n": a comment, which clients ignore; sent as a keep-alive so that a write notices a
// client that went away. Line breaks in `text` become spaces.
std::string SseComment(absl::string_view text);

// "retry: MS\n\n": how long EventSource waits before reconnecting after the stream ends.
std::string SseRetry(int milliseconds);

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_SSE_H_
