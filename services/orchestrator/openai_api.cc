#include "services/orchestrator/openai_api.h"

#include <deque>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "services/orchestrator/openai_request.h"

namespace moe {
namespace {

using json = nlohmann::json;
using moe::v1::GenerateResponse;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void SendError(HttpResponse& resp, const ApiError& e) {
  resp.Send(e.http_status, "application/json", ApiErrorJson(e));
}

int CodePoints(absl::string_view s) {
  int n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// What the engine threads hand to the connection's thread: a token of prompt `prompt`, or the end
// of that prompt's request.
struct Event {
  int prompt = 0;
  bool done = false;
  GenerateResponse msg;
  absl::Status status;
};

// Bounded by the request itself (max_tokens x n x prompts messages). Thread-safe.
class EventQueue {
 public:
  void Push(Event e) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(e));
  }
  // Waits up to `timeout` for an event; returns everything queued.
  std::deque<Event> Take(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](std::deque<Event>* q) { return !q->empty(); }, &queue_),
                         timeout);
    std::deque<Event> out;
    out.swap(queue_);
    return out;
  }

 private:
  absl::Mutex mu_;
  std::deque<Event> queue_ ABSL_GUARDED_BY(mu_);
};

// One choice of the answer as it builds up.
struct Choice {
  std::string text;
  std::string finish_reason;
  int text_offset = 0;  // code points so far, the echoed prompt included
  json logprobs = {{"tokens", json::array()},
                   {"token_logprobs", json::array()},
                   {"top_logprobs", json::array()},
                   {"text_offset", json::array()}};
  json routing = json::array();
};

json TokenLogprobsJson(const moe::v1::TokenLogprobs& lp, int offset) {
  json top = json::object();
  for (const auto& a : lp.top()) top[a.token()] = a.logprob();
  return {{"tokens", {lp.token()}},
          {"token_logprobs", {lp.logprob()}},
          {"top_logprobs", {top}},
          {"text_offset", {offset}}};
}

json RoutingJson(const GenerateResponse& m) {
  json layers = json::array();
  for (const moe::v1::LayerRouting& l : m.routing()) {
    json experts = json::array();
    for (const moe::v1::ExpertChoice& e : l.experts()) {
      experts.push_back({{"expert", e.expert()},
                         {"micro", e.micro()},
                         {"weight", e.weight()},
                         {"pool", e.pool()}});
    }
    json shared = json::array();
    for (const moe::v1::SharedChoice& s : l.shared()) shared.push_back(s.pool());
    layers.push_back({{"layer", l.layer()}, {"experts", experts}, {"shared_pools", shared}});
  }
  return {{"position", m.position()}, {"token_id", m.token_id()}, {"layers", layers}};
}

}  // namespace

OpenAiApi::OpenAiApi(Generations* generations, const ModelConfig& config, std::string model)
    : generations_(generations),
      config_(config),
      model_(std::move(model)),
      created_(absl::ToUnixSeconds(absl::Now())) {}

std::pair<std::string, std::string> OpenAiApi::ServerErrorBody(int status,
                                                               absl::string_view message) {
  ApiError e;
  e.http_status = status;
  e.message = std::string(message);
  e.type = status < 500 ? "invalid_request_error" : "server_error";
  return {"application/json", ApiErrorJson(e)};
}

void OpenAiApi::Handle(const HttpRequest& req, HttpResponse& resp) {
  const bool completions = req.path == "/v1/completions";
  const bool models = req.path == "/v1/models" || absl::StartsWith(req.path, "/v1/models/");
  if (!completions && !models) {
    ApiError e{404,
               absl::StrCat("unknown path ", req.path,
                            " (this server answers POST /v1/completions and GET /v1/models)"),
               "invalid_request_error", "", "unknown_url"};
    return SendError(resp, e);
  }
  const char* want = completions ? "POST" : "GET";
  if (req.method != want) {
    ApiError e{405, absl::StrCat(req.path, ": use ", want, ", not ", req.method),
               "invalid_request_error", "", "method_not_allowed"};
    return SendError(resp, e);
  }
  if (completions) return Completions(req, resp);
  if (req.path == "/v1/models") return Models(resp);
  const std::string id = req.path.substr(std::string("/v1/models/").size());
  if (id != model_) {
    ApiError e{
        404, absl::StrCat("model \"", id, "\" does not exist; this server serves \"", model_, "\""),
        "invalid_request_error", "model", "model_not_found"};
    return SendError(resp, e);
  }
  resp.Send(
      200, "application/json",
      Dump({{"id", model_}, {"object", "model"}, {"created", created_}, {"owned_by", "moe"}}));
}

void OpenAiApi::Models(HttpResponse& resp) {
  json model = {{"id", model_},
                {"object", "model"},
                {"created", created_},
                {"owned_by", "moe"},
                {"max_model_len", config_.context_length}};
  resp.Send(200, "application/json", Dump({{"object", "list"}, {"data", {model}}}));
}

void OpenAiApi::Completions(const HttpRequest& req, HttpResponse& resp) {
  absl::StatusOr<CompletionsRequest> parsed = ParseCompletionsBody(req.body);
  if (!parsed.ok()) return SendError(resp, ApiErrorFrom(parsed.status()));
  if (parsed->model != model_) {
    ApiError e{404,
               absl::StrCat("model: \"", parsed->model, "\" does not exist; this server serves \"",
                            model_, "\" (GET /v1/models)"),
               "invalid_request_error", "model", "model_not_found"};
    return SendError(resp, e);
  }
  const int prompts = static_cast<int>(parsed->prompts.size());
  const int n = parsed->n;
  auto queue = std::make_shared<EventQueue>();
  std::vector<std::shared_ptr<Generation>> gens;
  auto cancel_all = [&gens] {
    for (auto& g : gens) g->Cancel();
  };
  for (int i = 0; i < prompts; ++i) {
    auto g = std::make_shared<Generation>();
    g->on_message = [queue, i](GenerateResponse m) { queue->Push({i, false, std::move(m), {}}); };
    g->on_finish = [queue, i](const absl::Status& s) { queue->Push({i, true, {}, s}); };
    if (absl::Status s = generations_->Start(g, parsed->prompts[i]); !s.ok()) {
      // The prompts started before this one end before the answer goes out.
      cancel_all();
      for (int done = 0; done < i;) {
        for (const Event& e : queue->Take(absl::Milliseconds(100))) done += e.done;
      }
      return SendError(resp, ApiErrorFrom(s));
    }
    gens.push_back(std::move(g));
  }
  const std::string id = absl::StrCat("cmpl-", gens[0]->id);
  const int64_t created = absl::ToUnixSeconds(absl::Now());
  int prompt_tokens = 0, completion_tokens = 0;
  for (const auto& g : gens) prompt_tokens += static_cast<int>(g->params.prompt.size());
  std::vector<Choice> choices(static_cast<size_t>(prompts) * n);
  const bool stream = parsed->stream;
  // The events of one wake-up leave in one write (one chunk, one system call).
  std::string events;
  auto chunk = [&](json choice) {
    json j = {{"id", id},
              {"object", "text_completion"},
              {"created", created},
              {"model", model_},
              {"choices", {std::move(choice)}}};
    absl::StrAppend(&events, "data: ", Dump(j), "\n\n");
  };
  auto flush = [&] {
    if (!events.empty()) resp.Write(events);
    events.clear();
  };
  if (stream) resp.StartStream(200, "text/event-stream");
  if (parsed->echo) {
    for (size_t c = 0; c < choices.size(); ++c) {
      const std::string& prompt = parsed->prompts[c / n].prompt();
      choices[c].text = prompt;
      choices[c].text_offset = CodePoints(prompt);
      if (stream) {
        chunk({{"index", c}, {"text", prompt}, {"logprobs", nullptr}, {"finish_reason", nullptr}});
      }
    }
    flush();
  }
  int running = prompts;
  absl::Status failure;
  bool gone = false;
  absl::Time next_gone_check = absl::Now();
  while (running > 0) {
    for (Event& e : queue->Take(absl::Milliseconds(100))) {
      if (e.done) {
        --running;
        if (!e.status.ok() && failure.ok()) {
          failure = e.status;
          cancel_all();
        }
        continue;
      }
      const GenerateResponse& m = e.msg;
      if (m.is_prompt()) continue;
      const size_t index = static_cast<size_t>(e.prompt) * n + m.index();
      Choice& c = choices[index];
      ++completion_tokens;
      c.text += m.text();
      if (!m.finish_reason().empty()) c.finish_reason = m.finish_reason();
      json lp = nullptr;
      if (parsed->logprobs >= 0) {
        lp = TokenLogprobsJson(m.logprobs(), c.text_offset);
        c.text_offset += CodePoints(m.logprobs().token());
        for (const char* k : {"tokens", "token_logprobs", "top_logprobs", "text_offset"}) {
          c.logprobs[k].push_back(lp[k][0]);
        }
      }
      json routing = parsed->routing ? RoutingJson(m) : json();
      if (parsed->routing) c.routing.push_back(routing);
      if (stream) {
        json choice = {
            {"index", index},
            {"text", m.text()},
            {"logprobs", std::move(lp)},
            {"finish_reason", m.finish_reason().empty() ? json(nullptr) : json(m.finish_reason())}};
        if (parsed->routing) choice["moe_routing"] = {std::move(routing)};
        chunk(std::move(choice));
      }
    }
    flush();
    // A system call: at most every 100 ms, not on every token.
    if (!gone && absl::Now() >= next_gone_check) {
      next_gone_check = absl::Now() + absl::Milliseconds(100);
      if (resp.ClientGone()) {
        gone = true;
        cancel_all();
      }
    }
  }
  if (gone) return;
  const json usage = {{"prompt_tokens", prompt_tokens},
                      {"completion_tokens", completion_tokens},
                      {"total_tokens", prompt_tokens + completion_tokens}};
  if (stream) {
    if (!failure.ok()) {
      ApiError e = ApiErrorFrom(failure);
      resp.Write(absl::StrCat("data: ", ApiErrorJson(e), "\n\n"));
    } else if (parsed->include_usage) {
      json j = {{"id", id},        {"object", "text_completion"}, {"created", created},
                {"model", model_}, {"choices", json::array()},    {"usage", usage}};
      resp.Write(absl::StrCat("data: ", Dump(j), "\n\n"));
    }
    resp.Write("data: [DONE]\n\n");
    resp.End();
    return;
  }
  if (!failure.ok()) return SendError(resp, ApiErrorFrom(failure));
  json out_choices = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    Choice& c = choices[i];
    json choice = {{"index", i},
                   {"text", std::move(c.text)},
                   {"logprobs", parsed->logprobs >= 0 ? std::move(c.logprobs) : json(nullptr)},
                   {"finish_reason", c.finish_reason}};
    if (parsed->routing) choice["moe_routing"] = std::move(c.routing);
    out_choices.push_back(std::move(choice));
  }
  resp.Send(200, "application/json",
            Dump({{"id", id},
                  {"object", "text_completion"},
                  {"created", created},
                  {"model", model_},
                  {"choices", std::move(out_choices)},
                  {"usage", usage}}));
}

}  // namespace moe
