// The orchestrator in-process, with an in-process router and pools behind it: the public API
// through real gRPC calls. Tokens are checked against the embedded model (router and experts in
// the same process, no network) loaded from the same weights.
#include "services/orchestrator/orchestrator_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "models/embedded.h"
#include "services/common/deadline.h"
#include "services/testing/in_process_cluster.h"

namespace moe {
namespace {

using ::testing::HasSubstr;
using testing::InProcessCluster;
using testing::InProcessClusterOptions;

class OrchestratorServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InProcessClusterOptions options;
    options.orchestrator = true;
    options.lanes = 2;
    options.max_batch = 3;
    absl::StatusOr<std::unique_ptr<InProcessCluster>> c =
        InProcessCluster::Start(std::move(options));
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = *std::move(c);
    stub_ = moe::v1::Orchestrator::NewStub(
        grpc::CreateChannel(cluster_->orchestrator_address(), grpc::InsecureChannelCredentials()));
  }

  static moe::v1::GenerateRequest Greedy(const std::string& prompt, int max_tokens) {
    moe::v1::GenerateRequest req;
    req.set_prompt(prompt);
    req.set_max_tokens(max_tokens);
    req.set_temperature(0);
    return req;
  }

  // The embedded run of the same model: the oracle.
  std::vector<int> EmbeddedTokens(const std::string& prompt, int max_tokens) {
    EngineOptions options;
    options.max_batch = 1;
    absl::StatusOr<std::unique_ptr<EmbeddedModel>> m =
        EmbeddedModel::Load(cluster_->source(), options);
    EXPECT_TRUE(m.ok()) << m.status();
    GenerateParams p;
    p.prompt = (*m)->tokenizer().Encode(prompt);
    p.max_new_tokens = max_tokens;
    p.sampling.temperature = 0;
    std::vector<int> ids;
    EXPECT_TRUE((*m)->Generate(std::move(p),
                               [&](const TokenOutput& t) {
                                 if (!t.is_prompt) ids.push_back(t.token_id);
                               })
                    .ok());
    return ids;
  }

  grpc::Status Generate(const moe::v1::GenerateRequest& req,
                        std::vector<moe::v1::GenerateResponse>* out) {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(60));
    auto reader = stub_->Generate(&ctx, req);
    moe::v1::GenerateResponse msg;
    while (reader->Read(&msg)) out->push_back(msg);
    return reader->Finish();
  }

  std::string Metrics() {
    return prometheus::TextSerializer().Serialize(cluster_->orchestrator_registry().Collect());
  }

  std::unique_ptr<InProcessCluster> cluster_;
  std::unique_ptr<moe::v1::Orchestrator::Stub> stub_;
};

TEST_F(OrchestratorServiceTest, GenerateStreamsTheEmbeddedModelsGreedyTokens) {
  std::vector<moe::v1::GenerateResponse> msgs;
  ASSERT_TRUE(Generate(Greedy("The jury", 12), &msgs).ok());
  std::vector<int> ids;
  for (const auto& m : msgs) {
    EXPECT_FALSE(m.is_prompt());
    ASSERT_EQ(m.routing_size(), cluster_->config().n_layers);
    ids.push_back(m.token_id());
  }
  EXPECT_EQ(ids, EmbeddedTokens("The jury", 12));
  ASSERT_FALSE(msgs.empty());
  EXPECT_FALSE(msgs.back().finish_reason().empty());
  EXPECT_THAT(Metrics(), HasSubstr("moe_generate_requests_total{code=\"OK\"} 1"));
}

TEST_F(OrchestratorServiceTest, ConcurrentRequestsEachGetTheirOwnExactTokens) {
  const std::vector<std::string> prompts = {"a", "bc", "def", "ghij", "klmno"};
  std::vector<std::vector<int>> got(prompts.size());
  std::vector<grpc::Status> status(prompts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i) {
    threads.emplace_back([&, i] {
      std::vector<moe::v1::GenerateResponse> msgs;
      status[i] = Generate(Greedy(prompts[i], 8), &msgs);
      for (const auto& m : msgs) got[i].push_back(m.token_id());
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    ASSERT_TRUE(status[i].ok()) << status[i].error_message();
    EXPECT_EQ(got[i], EmbeddedTokens(prompts[i], 8)) << prompts[i];
  }
}

TEST_F(OrchestratorServiceTest, CompleteReturnsWhatGenerateStreams) {
  moe::v1::GenerateRequest req = Greedy("hello", 6);
  req.set_echo_prompt(true);
  std::vector<moe::v1::GenerateResponse> msgs;
  ASSERT_TRUE(Generate(req, &msgs).ok());
  std::string text;
  std::vector<int> ids;
  int prompt_msgs = 0;
  for (const auto& m : msgs) {
    if (m.is_prompt()) {
      ++prompt_msgs;
      continue;
    }
    text += m.text();
    ids.push_back(m.token_id());
  }
  EXPECT_EQ(prompt_msgs, 5) << "echo_prompt streams the prompt's tokens first";

  moe::v1::CompleteResponse resp;
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(60));
  ASSERT_TRUE(stub_->Complete(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.text(), text);
  EXPECT_EQ(std::vector<int>(resp.token_ids().begin(), resp.token_ids().end()), ids);
  EXPECT_EQ(resp.prompt_tokens(), 5);
  EXPECT_FALSE(resp.request_id().empty());
}

moe::v1::CompleteResponse CompleteOrDie(moe::v1::Orchestrator::Stub& stub,
                                        const moe::v1::GenerateRequest& req) {
  moe::v1::CompleteResponse resp;
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(60));
  grpc::Status st = stub.Complete(&ctx, req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return resp;
}

std::vector<int> Ids(const moe::v1::CompleteResponse::Completion& c) {
  return std::vector<int>(c.token_ids().begin(), c.token_ids().end());
}

TEST_F(OrchestratorServiceTest, NCompletionsAreTheSingleCompletionsOfSeedPlusIndex) {
  moe::v1::GenerateRequest req = Greedy("hello", 6);
  req.set_temperature(1.5f);
  req.set_seed(40);
  req.set_n(3);
  moe::v1::CompleteResponse all = CompleteOrDie(*stub_, req);
  ASSERT_EQ(all.completions_size(), 3);
  EXPECT_EQ(all.text(), all.completions(0).text());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(all.completions(i).index(), i);
    moe::v1::GenerateRequest one = req;
    one.clear_n();
    one.set_seed(40 + i);
    moe::v1::CompleteResponse single = CompleteOrDie(*stub_, one);
    EXPECT_EQ(Ids(all.completions(i)), Ids(single.completions(0))) << "completion " << i;
    EXPECT_EQ(all.completions(i).seed(), 40u + i);
  }
  // The stream tells the completions apart by index.
  std::vector<moe::v1::GenerateResponse> msgs;
  ASSERT_TRUE(Generate(req, &msgs).ok());
  std::vector<std::vector<int>> streamed(3);
  for (const auto& m : msgs) streamed[m.index()].push_back(m.token_id());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(streamed[i], Ids(all.completions(i)));
}

TEST_F(OrchestratorServiceTest, StopSequenceEndsTheTextBeforeItAndNeverShowsIt) {
  moe::v1::GenerateRequest req = Greedy("hello", 12);
  std::vector<moe::v1::GenerateResponse> msgs;
  ASSERT_TRUE(Generate(req, &msgs).ok());
  // A stop sequence that greedy decoding reaches: the text of a later token.
  std::string full, stop;
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (i >= 4 && stop.empty() && !msgs[i].text().empty()) stop = msgs[i].text();
    full += msgs[i].text();
  }
  ASSERT_FALSE(stop.empty());
  const std::string expected = full.substr(0, full.find(stop));
  req.add_stop(stop);
  msgs.clear();
  ASSERT_TRUE(Generate(req, &msgs).ok());
  std::string streamed;
  for (const auto& m : msgs) streamed += m.text();
  EXPECT_EQ(streamed, expected);
  EXPECT_EQ(msgs.back().finish_reason(), "stop");
  moe::v1::CompleteResponse resp = CompleteOrDie(*stub_, req);
  EXPECT_EQ(resp.text(), expected);
  EXPECT_EQ(resp.finish_reason(), "stop");
  EXPECT_THAT(Metrics(), HasSubstr("moe_inflight_requests 0"));
}

TEST_F(OrchestratorServiceTest, LogprobsComeWithEveryGeneratedTokenAndItsAlternatives) {
  moe::v1::GenerateRequest req = Greedy("hello", 5);
  req.set_logprobs(3);
  std::vector<moe::v1::GenerateResponse> msgs;
  ASSERT_TRUE(Generate(req, &msgs).ok());
  ASSERT_EQ(msgs.size(), 5u);
  for (const auto& m : msgs) {
    ASSERT_TRUE(m.has_logprobs());
    const moe::v1::TokenLogprobs& lp = m.logprobs();
    ASSERT_EQ(lp.top_size(), 3);
    // Greedy draws the most likely token.
    EXPECT_EQ(lp.top(0).token_id(), m.token_id());
    EXPECT_EQ(lp.top(0).logprob(), lp.logprob());
    EXPECT_LE(lp.logprob(), 0.0f);
    EXPECT_GE(lp.top(1).logprob(), lp.top(2).logprob());
    EXPECT_EQ(lp.token(), lp.top(0).token());
  }
  req.clear_logprobs();
  msgs.clear();
  ASSERT_TRUE(Generate(req, &msgs).ok());
  for (const auto& m : msgs) EXPECT_FALSE(m.has_logprobs());
}

TEST_F(OrchestratorServiceTest, NeutralPenaltiesKeepTheTokensAndRealOnesChangeThem) {
  moe::v1::GenerateRequest req = Greedy("hello", 16);
  const std::vector<int> plain = Ids(CompleteOrDie(*stub_, req).completions(0));
  req.set_presence_penalty(0);
  req.set_frequency_penalty(0);
  req.set_repetition_penalty(1);
  EXPECT_EQ(Ids(CompleteOrDie(*stub_, req).completions(0)), plain);
  req.set_repetition_penalty(2);
  req.set_frequency_penalty(2);
  const std::vector<int> penalized = Ids(CompleteOrDie(*stub_, req).completions(0));
  EXPECT_NE(penalized, plain);
  // The penalized run repeats its most frequent token no more often than the plain run does.
  std::map<int, int> counts;
  for (int id : penalized) ++counts[id];
  int max_count = 0;
  for (const auto& [id, c] : counts) max_count = std::max(max_count, c);
  std::map<int, int> plain_counts;
  for (int id : plain) ++plain_counts[id];
  int plain_max = 0;
  for (const auto& [id, c] : plain_counts) plain_max = std::max(plain_max, c);
  EXPECT_LE(max_count, plain_max);
}

TEST_F(OrchestratorServiceTest, BadSamplingControlsAreNamed) {
  for (auto [set, message] :
       std::vector<std::pair<void (*)(moe::v1::GenerateRequest&), const char*>>{
           {[](moe::v1::GenerateRequest& r) { r.set_n(0); }, "n: must be in [1, 16], got 0"},
           {[](moe::v1::GenerateRequest& r) { r.add_stop(""); }, "stop[0]: must be 1 to 64 bytes"},
           {[](moe::v1::GenerateRequest& r) { r.set_presence_penalty(3); },
            "presence_penalty: must be in [-2, 2], got 3"},
           {[](moe::v1::GenerateRequest& r) { r.set_logprobs(99); },
            "logprobs: must be in [0, 20], got 99"}}) {
    moe::v1::GenerateRequest req = Greedy("x", 2);
    set(req);
    std::vector<moe::v1::GenerateResponse> msgs;
    grpc::Status st = Generate(req, &msgs);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << message;
    EXPECT_THAT(st.error_message(), HasSubstr(message));
  }
}

TEST_F(OrchestratorServiceTest, BadRequestsAreInvalidArgumentNamingTheFieldOnBothMethods) {
  moe::v1::GenerateRequest req = Greedy("x", 0);
  std::vector<moe::v1::GenerateResponse> msgs;
  grpc::Status st = Generate(req, &msgs);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("max_tokens: must be in [1, 1024], got 0"));
  EXPECT_TRUE(msgs.empty());

  req = Greedy("", 4);
  moe::v1::CompleteResponse resp;
  grpc::ClientContext ctx;
  st = stub_->Complete(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("prompt: must not be empty"));
  EXPECT_THAT(Metrics(), HasSubstr("moe_generate_requests_total{code=\"INVALID_ARGUMENT\"} 2"));
  EXPECT_THAT(Metrics(), HasSubstr("moe_inflight_requests 0"));
}

TEST_F(OrchestratorServiceTest, AClientThatCancelsEndsItsRequest) {
  grpc::ClientContext ctx;
  auto reader = stub_->Generate(&ctx, Greedy("cancel me", 1000));
  moe::v1::GenerateResponse msg;
  ASSERT_TRUE(reader->Read(&msg));
  ctx.TryCancel();
  while (reader->Read(&msg)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The engine lets the request go: nothing stays in flight.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!absl::StrContains(Metrics(), "moe_inflight_requests 0") && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_THAT(Metrics(), HasSubstr("moe_inflight_requests 0"));
  EXPECT_THAT(Metrics(), HasSubstr("moe_generate_requests_total{code=\"CANCELLED\"} 1"));
}

TEST_F(OrchestratorServiceTest, WatchRoutingSeesARequestStartItsTokensAndItsEnd) {
  grpc::ClientContext watch_ctx;
  moe::v1::WatchRoutingRequest filter;
  filter.add_layers(1);
  auto watch = stub_->WatchRouting(&watch_ctx, filter);
  // The subscription is in place once the stream is up; give it a moment before publishing.
  absl::SleepFor(absl::Milliseconds(100));
  std::vector<moe::v1::GenerateResponse> msgs;
  ASSERT_TRUE(Generate(Greedy("watch", 3), &msgs).ok());

  bool started = false;
  bool finished = false;
  int tokens = 0;
  moe::v1::WatchRoutingResponse batch;
  while (!finished && watch->Read(&batch)) {
    for (const moe::v1::RoutingEvent& ev : batch.events()) {
      if (ev.has_started()) started = true;
      if (ev.has_token()) {
        EXPECT_EQ(ev.token().routing().layer(), 1) << "the layer filter let another through";
        ++tokens;
      }
      if (ev.has_finished()) {
        finished = true;
        EXPECT_EQ(ev.finished().generated_tokens(), 3);
        EXPECT_EQ(ev.finished().finish_reason(), "done");
      }
    }
  }
  watch_ctx.TryCancel();
  EXPECT_TRUE(started);
  EXPECT_TRUE(finished);
  EXPECT_EQ(tokens, 5 + 3) << "one event per token, prompt included, in the one layer asked";
}

TEST_F(OrchestratorServiceTest, WatchRoutingRefusesABadFilterNamingIt) {
  grpc::ClientContext ctx;
  moe::v1::WatchRoutingRequest filter;
  filter.add_layers(9);
  auto watch = stub_->WatchRouting(&ctx, filter);
  moe::v1::WatchRoutingResponse batch;
  EXPECT_FALSE(watch->Read(&batch));
  const grpc::Status st = watch->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("layers"));
}

// A flood past the limits: the requests over --max_requests and the streams over --max_watchers
// are refused RESOURCE_EXHAUSTED naming the flag, nothing crashes, and the admitted requests
// finish with their tokens.
TEST(OrchestratorAdmissionTest, AFloodPastTheLimitsIsRefusedNamingThemAndTheRestFinish) {
  InProcessClusterOptions options;
  options.orchestrator = true;
  options.max_requests = 3;
  options.max_watchers = 2;
  absl::StatusOr<std::unique_ptr<InProcessCluster>> c = InProcessCluster::Start(options);
  ASSERT_TRUE(c.ok()) << c.status();
  auto stub = moe::v1::Orchestrator::NewStub(
      grpc::CreateChannel((*c)->orchestrator_address(), grpc::InsecureChannelCredentials()));

  constexpr int kFlood = 24;
  std::vector<grpc::Status> status(kFlood);
  std::vector<int> tokens(kFlood, 0);
  std::vector<std::thread> threads;
  absl::Notification go;  // every request at once
  for (int i = 0; i < kFlood; ++i) {
    threads.emplace_back([&, i] {
      go.WaitForNotification();
      moe::v1::GenerateRequest req;
      req.set_prompt("flood");
      req.set_max_tokens(30);
      req.set_temperature(0);
      moe::v1::CompleteResponse resp;
      grpc::ClientContext ctx;
      SetTimeout(ctx, absl::Seconds(60));
      status[i] = stub->Complete(&ctx, req, &resp);
      tokens[i] = resp.token_ids_size();
    });
  }
  absl::SleepFor(absl::Milliseconds(50));
  go.Notify();
  for (auto& t : threads) t.join();
  int ok = 0, refused = 0;
  for (int i = 0; i < kFlood; ++i) {
    if (status[i].ok()) {
      ++ok;
      EXPECT_EQ(tokens[i], 30);
    } else {
      ++refused;
      EXPECT_EQ(status[i].error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
      EXPECT_THAT(status[i].error_message(), HasSubstr("at most --max_requests=3"));
    }
  }
  EXPECT_GE(ok, 3);
  EXPECT_GT(refused, 0);
  // With the flood over, requests are admitted again.
  moe::v1::CompleteResponse resp;
  grpc::ClientContext after;
  moe::v1::GenerateRequest req;
  req.set_prompt("after");
  req.set_max_tokens(2);
  EXPECT_TRUE(stub->Complete(&after, req, &resp).ok());

  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<moe::v1::WatchRoutingResponse>>> watches;
  for (int i = 0; i < 2; ++i) {
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
    watches.push_back(stub->WatchRouting(ctxs.back().get(), moe::v1::WatchRoutingRequest()));
  }
  absl::SleepFor(absl::Milliseconds(200));  // both subscribed
  grpc::ClientContext third;
  auto refused_watch = stub->WatchRouting(&third, moe::v1::WatchRoutingRequest());
  moe::v1::WatchRoutingResponse batch;
  EXPECT_FALSE(refused_watch->Read(&batch));
  const grpc::Status st = refused_watch->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(st.error_message(), HasSubstr("at most --max_watchers=2"));
  for (auto& ctx : ctxs) ctx->TryCancel();
  for (auto& w : watches) (void)w->Finish();
}

TEST_F(OrchestratorServiceTest, ModelInfoDescribesTheServedModelAndItsBatchCapacity) {
  moe::v1::ModelInfo info;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->GetModelInfo(&ctx, moe::v1::GetModelInfoRequest(), &info).ok());
  const ModelConfig& c = cluster_->config();
  EXPECT_EQ(info.model_id(), ModelId(c));
  EXPECT_EQ(info.n_layers(), c.n_layers);
  EXPECT_EQ(info.granularity(), c.granularity);
  EXPECT_EQ(info.n_shared(), c.n_shared);
  EXPECT_EQ(info.parameters(), c.ParameterCount());
  EXPECT_EQ(info.max_batch(), 2 * 3) << "lanes x per-lane max_batch";
}

TEST_F(OrchestratorServiceTest, PlacementIsTheRoutersAnswerOrSaysTheRouterFailed) {
  moe::v1::Placement p;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->GetPlacement(&ctx, moe::v1::GetPlacementRequest(), &p).ok());
  }
  ASSERT_EQ(p.pools_size(), 2);
  EXPECT_EQ(p.pools(1).name(), "pool-b");
  cluster_->StopRouter();
  grpc::ClientContext ctx;
  const grpc::Status st = stub_->GetPlacement(&ctx, moe::v1::GetPlacementRequest(), &p);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(st.error_message(), ::testing::StartsWith("router: "));
}

}  // namespace
}  // namespace moe
