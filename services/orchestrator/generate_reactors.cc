#include "services/orchestrator/generate_reactors.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "services/common/status.h"
#include "services/orchestrator/queued_writer.h"

namespace moe {
namespace {

using moe::v1::GenerateResponse;

class GenerateReactor : public QueuedWriter<GenerateResponse> {
 public:
  void Begin(Generations& generations, const moe::v1::GenerateRequest& req) {
    auto g = std::make_shared<Generation>();
    generation_ = g;
    // The engine's callbacks keep the stream alive until the request is over.
    auto self = std::static_pointer_cast<GenerateReactor>(shared_from_this());
    g->on_message = [self](GenerateResponse m) { self->Enqueue(std::move(m)); };
    g->on_finish = [self](const absl::Status& s) { self->Close(ToGrpcStatus(s)); };
    if (absl::Status s = generations.Start(g, req); !s.ok()) {
      g->on_message = nullptr;
      g->on_finish = nullptr;
      Close(ToGrpcStatus(s));
    }
  }

  void OnCancel() override {
    if (auto g = generation_.lock()) g->Cancel();
    Close(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
  }

 private:
  std::weak_ptr<Generation> generation_;
};

class CompleteReactor : public grpc::ServerUnaryReactor {
 public:
  static CompleteReactor* Start(Generations& generations, const moe::v1::GenerateRequest& req,
                                moe::v1::CompleteResponse* resp) {
    auto reactor = std::shared_ptr<CompleteReactor>(new CompleteReactor(resp));
    reactor->self_ = reactor;
    auto g = std::make_shared<Generation>();
    reactor->generation_ = g;
    // Filled on the engine threads; Generation serializes on_message and on_finish.
    auto completions = std::make_shared<std::vector<moe::v1::CompleteResponse::Completion>>();
    g->on_message = [completions](GenerateResponse m) {
      if (m.is_prompt()) return;
      if (static_cast<size_t>(m.index()) >= completions->size()) {
        completions->resize(m.index() + 1);
      }
      moe::v1::CompleteResponse::Completion& c = (*completions)[m.index()];
      c.set_index(m.index());
      *c.mutable_text() += m.text();
      c.add_token_ids(m.token_id());
      if (!m.finish_reason().empty()) c.set_finish_reason(m.finish_reason());
      if (m.seed() != 0) c.set_seed(m.seed());
      if (m.has_logprobs()) *c.add_logprobs() = std::move(*m.mutable_logprobs());
    };
    // g's own callback must not own g: a raw pointer, valid while the engine runs it.
    Generation* raw = g.get();
    g->on_finish = [reactor, completions, raw](const absl::Status& s) {
      moe::v1::CompleteResponse* r = reactor->resp_;
      r->set_request_id(raw->id);
      r->set_prompt_tokens(static_cast<int>(raw->params.prompt.size()));
      completions->resize(raw->n);
      for (int i = 0; i < raw->n; ++i) (*completions)[i].set_index(i);
      const moe::v1::CompleteResponse::Completion& first = (*completions)[0];
      r->set_text(first.text());
      r->mutable_token_ids()->CopyFrom(first.token_ids());
      r->set_finish_reason(first.finish_reason());
      r->set_seed(first.seed());
      for (auto& c : *completions) *r->add_completions() = std::move(c);
      reactor->Finish(ToGrpcStatus(s));
    };
    if (absl::Status s = generations.Start(g, req); !s.ok()) {
      g->on_message = nullptr;
      g->on_finish = nullptr;
      reactor->Finish(ToGrpcStatus(s));
    }
    return reactor.get();
  }

  void OnCancel() override {
    if (auto g = generation_.lock()) g->Cancel();
  }
  void OnDone() override { self_.reset(); }

 private:
  explicit CompleteReactor(moe::v1::CompleteResponse* resp) : resp_(resp) {}

  moe::v1::CompleteResponse* const resp_;
  std::weak_ptr<Generation> generation_;
  std::shared_ptr<CompleteReactor> self_;
};

}  // namespace

grpc::ServerWriteReactor<GenerateResponse>* StartGenerateStream(
    Generations& generations, const moe::v1::GenerateRequest& req) {
  auto reactor = std::make_shared<GenerateReactor>();
  reactor->Retain();
  reactor->Begin(generations, req);
  return reactor.get();
}

grpc::ServerUnaryReactor* StartComplete(Generations& generations,
                                        const moe::v1::GenerateRequest& req,
                                        moe::v1::CompleteResponse* resp) {
  return CompleteReactor::Start(generations, req, resp);
}

}  // namespace moe
