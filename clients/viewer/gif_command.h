// `viewer gif`: the routing-flow animation (render/flow_gif.h) of one layer, from a recorded
// trace or from a generation run live on a cluster. Pure conversion functions are thread-safe;
// GifCommand runs from the main thread.
#ifndef MOE_CLIENTS_VIEWER_GIF_COMMAND_H_
#define MOE_CLIENTS_VIEWER_GIF_COMMAND_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "clients/viewer/options.h"
#include "clients/viewer/render/flow_gif.h"
#include "moe/v1/events.pb.h"
#include "moe/v1/orchestrator.pb.h"

namespace moe::viewer {

FlowToken FlowTokenFromRouting(const moe::v1::LayerRouting& routing, absl::string_view text,
                               bool is_prompt);

// The token events of `layer` in trace order; with a non-empty `request_id`, only that request's.
std::vector<FlowToken> FlowTokensFromEvents(absl::Span<const moe::v1::RoutingEvent> events,
                                            int layer, absl::string_view request_id);

// The routing of `layer` of each streamed token (prompt tokens first when echoed).
std::vector<FlowToken> FlowTokensFromResponses(
    absl::Span<const moe::v1::GenerateResponse> responses, int layer);

// The whole subcommand: validates, gets tokens and layout (trace header or inferred; or
// GetModelInfo and a Generate with echo_prompt), renders the GIF, or one PNG frame with
// --png_frame. Prints a one-line summary on stderr.
absl::Status GifCommand(const GifCommandOptions& options);

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_GIF_COMMAND_H_
