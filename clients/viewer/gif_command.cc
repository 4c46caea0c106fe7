#include "clients/viewer/gif_command.h"

#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "clients/viewer/cluster_client.h"
#include "clients/viewer/trace.h"
#include "services/common/deadline.h"
#include "services/common/status.h"

namespace moe::viewer {
namespace {

absl::Status CheckLayer(int layer, int n_layers, absl::string_view origin) {
  if (n_layers > 0 && layer >= n_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("--layer: must be in [0, ", n_layers, ") (", origin, "), got ", layer));
  }
  return absl::OkStatus();
}

absl::Status Render(const GifCommandOptions& options, const ModelLayout& layout,
                    const std::vector<FlowToken>& tokens, absl::string_view from) {
  const absl::Status s = options.png_frame >= 0 ? RenderFlowFramePng(layout.flow, tokens,
                                                                     options.gif, options.png_frame)
                                                : RenderFlowGif(layout.flow, tokens, options.gif);
  if (!s.ok()) return s;
  std::fprintf(stderr,
               "viewer gif: wrote %s: %s, %zu tokens of layer %d from %s; layout %d experts x %d "
               "micro, %d shared, top-%d (%s)\n",
               options.gif.out.c_str(),
               options.png_frame >= 0 ? absl::StrCat("frame ", options.png_frame).c_str()
                                      : absl::StrCat(options.gif.frames, " frames").c_str(),
               tokens.size(), options.layer, std::string(from).c_str(), layout.flow.n_experts,
               layout.flow.granularity, layout.flow.n_shared, layout.flow.top_k,
               layout.origin.c_str());
  return absl::OkStatus();
}

absl::Status FromTrace(const GifCommandOptions& options) {
  absl::StatusOr<LoadedTrace> loaded = LoadTraceFlag(options.trace);
  if (!loaded.ok()) return loaded.status();
  const Trace* trace = &loaded->trace;
  const ModelLayout* layout = &loaded->layout;
  if (absl::Status s = CheckLayer(options.layer, layout->n_layers, layout->origin); !s.ok()) {
    return s;
  }
  std::vector<FlowToken> tokens =
      FlowTokensFromEvents(trace->events, options.layer, options.request_id);
  if (tokens.empty()) {
    std::set<int> layers;
    std::set<std::string> requests;
    for (const moe::v1::RoutingEvent& e : trace->events) {
      if (!e.has_token()) continue;
      layers.insert(e.token().routing().layer());
      requests.insert(e.token().request_id());
    }
    std::string what = absl::StrCat("--layer=", options.layer);
    if (!options.request_id.empty()) absl::StrAppend(&what, " --request_id=", options.request_id);
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": no token events in ", options.trace, " (", requests.size(),
        " requests; layers with tokens: ", layers.empty() ? "none" : absl::StrJoin(layers, ","),
        ")"));
  }
  return Render(options, *layout, tokens, absl::StrCat("trace ", options.trace));
}

absl::Status Live(const GifCommandOptions& options) {
  ClusterClient client(options.target, "", options.credentials);
  absl::StatusOr<moe::v1::ModelInfo> info = client.GetModelInfo(absl::Seconds(10));
  if (!info.ok()) return info.status();
  const ModelLayout layout = LayoutFromModelInfo(*info);
  if (absl::Status s = CheckLayer(options.layer, layout.n_layers, "the model's layers"); !s.ok()) {
    return s;
  }
  moe::v1::GenerateRequest request;
  request.set_prompt(options.prompt);
  request.set_max_tokens(options.max_tokens);
  request.set_temperature(static_cast<float>(options.temperature));
  if (options.sample_seed.has_value()) request.set_seed(*options.sample_seed);
  request.set_echo_prompt(true);
  grpc::ClientContext context;
  SetTimeout(context, absl::Seconds(options.deadline_s));
  std::unique_ptr<grpc::ClientReader<moe::v1::GenerateResponse>> reader =
      client.orchestrator()->Generate(&context, request);
  std::vector<moe::v1::GenerateResponse> responses;
  moe::v1::GenerateResponse response;
  while (reader->Read(&response)) responses.push_back(response);
  if (grpc::Status s = reader->Finish(); !s.ok()) {
    const absl::Status a = FromGrpcStatus(s);
    return absl::Status(a.code(),
                        absl::StrCat("orchestrator ", options.target, ": Generate: ", a.message()));
  }
  std::vector<FlowToken> tokens = FlowTokensFromResponses(responses, options.layer);
  if (tokens.empty()) {
    return absl::InternalError(absl::StrCat("orchestrator ", options.target,
                                            ": Generate: ", responses.size(),
                                            " tokens, none routed in layer ", options.layer));
  }
  return Render(
      options, layout, tokens,
      absl::StrCat("a generation of ", options.max_tokens, " tokens on ", options.target));
}

}  // namespace

FlowToken FlowTokenFromRouting(const moe::v1::LayerRouting& routing, absl::string_view text,
                               bool is_prompt) {
  FlowToken token;
  token.text = std::string(text);
  token.is_prompt = is_prompt;
  token.layer = routing.layer();
  for (const moe::v1::ExpertChoice& c : routing.experts()) {
    token.experts.push_back(FlowChoice{c.id(), c.expert(), c.micro(), c.weight()});
  }
  for (const moe::v1::SharedChoice& s : routing.shared()) token.shared.push_back(s.expert());
  return token;
}

std::vector<FlowToken> FlowTokensFromEvents(absl::Span<const moe::v1::RoutingEvent> events,
                                            int layer, absl::string_view request_id) {
  std::vector<FlowToken> out;
  for (const moe::v1::RoutingEvent& e : events) {
    if (!e.has_token() || e.token().routing().layer() != layer) continue;
    if (!request_id.empty() && e.token().request_id() != request_id) continue;
    out.push_back(
        FlowTokenFromRouting(e.token().routing(), e.token().text(), e.token().is_prompt()));
  }
  return out;
}

std::vector<FlowToken> FlowTokensFromResponses(
    absl::Span<const moe::v1::GenerateResponse> responses, int layer) {
  std::vector<FlowToken> out;
  for (const moe::v1::GenerateResponse& r : responses) {
    for (const moe::v1::LayerRouting& routing : r.routing()) {
      if (routing.layer() == layer)
        out.push_back(FlowTokenFromRouting(routing, r.text(), r.is_prompt()));
    }
  }
  return out;
}

absl::Status GifCommand(const GifCommandOptions& options) {
  if (absl::Status s = ValidateGifCommandOptions(options); !s.ok()) return s;
  return options.trace.empty() ? Live(options) : FromTrace(options);
}

}  // namespace moe::viewer
