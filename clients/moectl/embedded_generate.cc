// moectl's in-process generation (`moectl generate --embedded`): the model run here, no cluster.
// The only part of moectl that needs LibTorch, linked into moectl-embedded, not into moectl
// (embedded.h).
#include <cstdio>

#include "absl/time/clock.h"
#include "clients/moectl/embedded.h"
#include "models/embedded.h"
#include "models/stop_text.h"

namespace moe::cli {

absl::Status GenerateEmbedded(const ModelSource& source, const GenerateArgs& args, int threads,
                              Printer& printer) {
  SetIntraOpThreads(threads);
  EngineOptions options;
  options.max_batch = 1;
  absl::StatusOr<std::unique_ptr<EmbeddedModel>> model = EmbeddedModel::Load(source, options);
  if (!model.ok()) return model.status();
  const Tokenizer& tok = (*model)->tokenizer();
  printer.SetGranularity((*model)->config().granularity);
  GenerateParams p;
  p.prompt = tok.Encode(args.prompt);
  p.max_new_tokens = args.max_tokens;
  p.sampling.temperature = args.temperature;
  p.sampling.top_k = args.top_k;
  p.sampling.top_p = args.top_p;
  p.sampling.presence_penalty = args.presence_penalty;
  p.sampling.frequency_penalty = args.frequency_penalty;
  p.sampling.repetition_penalty = args.repetition_penalty;
  p.sampling.logprobs = args.logprobs;
  p.echo_prompt = args.echo_prompt;
  for (const std::string& s : args.stop) {
    if (s.empty()) return absl::InvalidArgumentError("stop: stop sequences must not be empty");
  }
  for (int i = 0; i < args.n; ++i) {
    GenerateParams params = p;
    params.sampling.seed = args.seed + static_cast<uint64_t>(i);  // as the orchestrator does
    if (args.n > 1) std::printf("[%d] ", i);
    if (!args.routing) std::fputs(args.prompt.c_str(), stdout);
    StreamDecoder decoder(&tok);
    StopText stop(args.stop);
    std::string finish;
    const absl::Time start = absl::Now();
    Engine& engine = (*model)->engine();
    absl::Status s = (*model)->Generate(std::move(params), [&](const TokenOutput& t) {
      if (finish == "stop") return;  // a stop sequence ended it; the engine stops next step
      RoutingRow row;
      row.position = t.position;
      row.is_prompt = t.is_prompt;
      row.text = SanitizeUtf8(tok.TokenBytes(t.token_id));
      for (const LayerRoute& r : t.routing) {
        row.layers.emplace_back();
        for (size_t k = 0; k < r.ids.size(); ++k)
          row.layers.back().push_back({r.ids[k], r.weights[k], ""});
      }
      std::string chunk;
      if (!t.is_prompt && t.token_id != (*model)->config().eos_id) chunk = decoder.Next(t.token_id);
      if (t.last) chunk += decoder.Finish();
      if (!t.is_prompt) {
        StopText::Step step = stop.Add(chunk);
        chunk = std::move(step.text);
        if (step.stopped) {
          finish = "stop";
          engine.Cancel(t.request_id);
        } else if (t.last) {
          chunk += stop.Flush();
        }
        if (args.logprobs >= 0) {
          std::vector<std::pair<std::string, float>> top;
          for (const LogprobEntry& e : t.logprobs.top) {
            top.emplace_back(SanitizeUtf8(tok.TokenBytes(e.token_id)), e.logprob);
          }
          printer.Logprobs(row.text, t.logprobs.logprob, top);
        }
      }
      printer.Token(row, chunk);
      if (t.last && finish.empty()) finish = t.finish_reason;
    });
    if (!s.ok() && !(finish == "stop" && s.code() == absl::StatusCode::kCancelled)) return s;
    printer.Finish(finish, args.seed + static_cast<uint64_t>(i),
                   absl::ToDoubleSeconds(absl::Now() - start));
  }
  return absl::OkStatus();
}

}  // namespace moe::cli
