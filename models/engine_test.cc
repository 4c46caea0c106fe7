#include "models/engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <functional>

#include "absl/synchronization/notification.h"
#include "models/checkpoint.h"
#include "models/embedded.h"
#include "models/test_util.h"
#include "models/transformer.h"

namespace moe {
namespace {

using ::testing::HasSubstr;

// What one request saw: its tokens and its end.
struct Outcome {
  absl::Notification done;
  absl::Status status;
  int tokens = 0;
  // `on_first_token`, if set, runs inside the first token's callback.
  GenerateCallbacks Callbacks(std::function<void()> on_first_token = nullptr) {
    return {[this, on_first_token](const TokenOutput&) {
              if (++tokens == 1 && on_first_token) on_first_token();
            },
            [this](const absl::Status& s) {
              status = s;
              done.Notify();
            }};
  }
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override { model_ = Load(testing::TinyConfig(), 4); }

  std::unique_ptr<EmbeddedModel> Load(const ModelConfig& c, int max_batch) {
    const std::string dir = testing::TempDir("engine");
    source_.random_init_config = dir + "/config.json";
    source_.seed = 5;
    std::ofstream(source_.random_init_config) << ConfigToJson(c);
    EngineOptions options;
    options.max_batch = max_batch;
    auto m = EmbeddedModel::Load(source_, options);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? std::move(*m) : nullptr;
  }

  GenerateParams Params(std::vector<int> prompt, int n, float temperature, uint64_t seed) {
    GenerateParams p;
    p.prompt = std::move(prompt);
    p.max_new_tokens = n;
    p.sampling.temperature = temperature;
    p.sampling.seed = seed;
    return p;
  }

  std::vector<int> Run(EmbeddedModel& m, GenerateParams p, std::string* reason = nullptr) {
    std::vector<int> out;
    absl::Status s = m.Generate(std::move(p), [&](const TokenOutput& t) {
      if (!t.is_prompt) out.push_back(t.token_id);
      if (t.last && reason != nullptr) *reason = t.finish_reason;
    });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  ModelSource source_;
  std::unique_ptr<EmbeddedModel> model_;
};

TEST_F(EngineTest, GreedyTokensAreArgmaxOfAFullRecompute) {
  std::vector<int> prompt = {10, 20, 30};
  std::vector<int> gen = Run(*model_, Params(prompt, 12, 0.0f, 0));
  ASSERT_EQ(gen.size(), 12u);
  auto ckpt = LoadModel(source_);
  ASSERT_TRUE(ckpt.ok());
  MoeTransformer full(ckpt->config);
  ASSERT_TRUE(LoadStateDict(*full, ckpt->state).ok());
  std::vector<int64_t> seq(prompt.begin(), prompt.end());
  seq.insert(seq.end(), gen.begin(), gen.end());
  torch::NoGradGuard g;
  torch::Tensor logits = full->forward(torch::tensor(seq).unsqueeze(0), model_->policy())[0];
  for (size_t i = 0; i < gen.size(); ++i) {
    EXPECT_EQ(logits[prompt.size() - 1 + i].argmax().item<int64_t>(), gen[i]) << "token " << i;
  }
}

TEST_F(EngineTest, SameSeedSameTokensOtherSeedOtherTokens) {
  std::vector<int> a = Run(*model_, Params({1, 2, 3}, 20, 1.0f, 77));
  std::vector<int> b = Run(*model_, Params({1, 2, 3}, 20, 1.0f, 77));
  std::vector<int> c = Run(*model_, Params({1, 2, 3}, 20, 1.0f, 78));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST_F(EngineTest, SequencesJoiningMidwayGetTheirSoloTokens) {
  std::vector<GenerateParams> reqs = {Params({5, 6, 7, 8, 9}, 14, 0.0f, 0),
                                      Params({100}, 6, 0.9f, 3), Params({42, 43}, 10, 1.2f, 9),
                                      Params({7, 7, 7, 7, 7, 7, 7}, 9, 0.0f, 0),
                                      Params({250, 1}, 11, 0.7f, 12)};
  std::vector<std::vector<int>> solo;
  for (const auto& r : reqs) solo.push_back(Run(*model_, r));

  // Now all at once on the engine thread: the first starts alone, the rest join while it runs,
  // and the batch limit (4) makes the last one wait for a free slot.
  Engine& engine = model_->engine();
  engine.Start();
  std::vector<std::vector<int>> together(reqs.size());
  std::vector<absl::Notification> done(reqs.size());
  absl::Notification first_token;
  for (size_t i = 0; i < reqs.size(); ++i) {
    GenerateCallbacks cb;
    cb.on_token = [&, i](const TokenOutput& t) {
      together[i].push_back(t.token_id);
      if (i == 0 && !first_token.HasBeenNotified()) first_token.Notify();
    };
    cb.on_done = [&, i](const absl::Status& s) {
      EXPECT_TRUE(s.ok()) << s;
      done[i].Notify();
    };
    ASSERT_TRUE(engine.Submit(reqs[i], cb).ok());
    if (i == 0) first_token.WaitForNotification();
  }
  for (auto& d : done) d.WaitForNotification();
  engine.Stop(/*drain=*/true);
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(together[i], solo[i]) << "request " << i;
}

TEST(MicroBatchesTest, SplitByBatchSizeWithinTheLimits) {
  EngineOptions o;
  o.max_micro_batches = 4;
  o.micro_batch_rows = 8;
  EXPECT_EQ(MicroBatches(o, 1), 1);
  EXPECT_EQ(MicroBatches(o, 15), 1);
  EXPECT_EQ(MicroBatches(o, 16), 2);
  EXPECT_EQ(MicroBatches(o, 32), 4);
  EXPECT_EQ(MicroBatches(o, 64), 4);
  o.max_micro_batches = 1;
  EXPECT_EQ(MicroBatches(o, 64), 1);
}

// Every micro-batch count gives each sequence its solo tokens and routing, while the batch
// shrinks (sequences finish at different steps and the last slots move into their holes).
TEST_F(EngineTest, MicroBatchedStepsGiveEverySequenceItsSoloTokensAndRouting) {
  const std::vector<GenerateParams> reqs = {
      Params({5, 6, 7, 8, 9}, 14, 0.0f, 0), Params({100}, 6, 0.9f, 3),
      Params({42, 43}, 10, 1.2f, 9),        Params({7, 7, 7, 7, 7, 7, 7}, 9, 0.0f, 0),
      Params({250, 1}, 11, 0.7f, 12),       Params({3}, 13, 0.0f, 0),
      Params({9, 8, 7}, 5, 1.0f, 4)};
  using Routing = std::vector<std::vector<int32_t>>;  // per token, every layer's ids
  auto collect = [&](EmbeddedModel& m, std::vector<std::vector<int>>& tokens,
                     std::vector<Routing>& routing) {
    Engine& engine = m.engine();
    tokens.assign(reqs.size(), {});
    routing.assign(reqs.size(), {});
    std::vector<absl::Notification> done(reqs.size());
    for (size_t i = 0; i < reqs.size(); ++i) {
      GenerateCallbacks cb;
      cb.on_token = [&, i](const TokenOutput& t) {
        tokens[i].push_back(t.token_id);
        for (const LayerRoute& r : t.routing) routing[i].push_back(r.ids);
      };
      cb.on_done = [&, i](const absl::Status& s) {
        EXPECT_TRUE(s.ok()) << s;
        done[i].Notify();
      };
      ASSERT_TRUE(engine.Submit(reqs[i], cb).ok());
    }
    engine.RunUntilIdle();
    for (auto& d : done) d.WaitForNotification();
  };
  std::vector<std::vector<int>> solo_tokens;
  std::vector<Routing> solo_routing;
  for (const auto& r : reqs) {
    auto one = Load(testing::TinyConfig(), 1);
    ASSERT_NE(one, nullptr);
    Engine& engine = one->engine();
    std::vector<int> got;
    Routing got_routing;
    GenerateCallbacks cb;
    cb.on_token = [&](const TokenOutput& tok) {
      got.push_back(tok.token_id);
      for (const LayerRoute& lr : tok.routing) got_routing.push_back(lr.ids);
    };
    cb.on_done = [](const absl::Status& s) { EXPECT_TRUE(s.ok()) << s; };
    ASSERT_TRUE(engine.Submit(r, cb).ok());
    engine.RunUntilIdle();
    solo_tokens.push_back(got);
    solo_routing.push_back(got_routing);
  }
  for (int parts : {1, 2, 3, 7}) {
    EngineOptions options;
    options.max_batch = 8;
    options.max_micro_batches = parts;
    options.micro_batch_rows = 1;
    auto m = EmbeddedModel::Load(source_, options);
    ASSERT_TRUE(m.ok()) << m.status();
    std::vector<std::vector<int>> tokens;
    std::vector<Routing> routing;
    collect(**m, tokens, routing);
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(tokens[i], solo_tokens[i]) << parts << " micro-batches, request " << i;
      EXPECT_EQ(routing[i], solo_routing[i]) << parts << " micro-batches, request " << i;
    }
  }
}

TEST_F(EngineTest, CancelStopsOnlyThatRequest) {
  Engine& engine = model_->engine();
  engine.Start();
  Outcome a, b;
  // Cancelled from its own first token's callback: deterministic, however fast the model is.
  // Ids are handed out in order from 1: the first request gets 1.
  ASSERT_EQ(
      *engine.Submit(Params({100, 101}, 40, 0.0f, 0), a.Callbacks([&engine] { engine.Cancel(1); })),
      1u);
  ASSERT_TRUE(engine.Submit(Params({3, 4}, 20, 0.0f, 0), b.Callbacks()).ok());
  a.done.WaitForNotification();
  b.done.WaitForNotification();
  engine.Stop(true);
  EXPECT_EQ(a.status.code(), absl::StatusCode::kCancelled);
  EXPECT_LE(a.tokens, 2);
  EXPECT_TRUE(b.status.ok());
  EXPECT_EQ(b.tokens, 20);
}

TEST_F(EngineTest, LanesSpreadRequestsAndEachGetsItsSoloTokens) {
  std::vector<GenerateParams> reqs = {Params({5, 6, 7}, 12, 0.0f, 0), Params({100}, 8, 0.9f, 3),
                                      Params({42, 43}, 10, 1.2f, 9), Params({7, 7}, 9, 0.0f, 0),
                                      Params({250, 1}, 11, 0.7f, 12)};
  std::vector<std::vector<int>> solo;
  for (const auto& r : reqs) solo.push_back(Run(*model_, r));

  EngineOptions options;
  options.max_batch = 2;
  std::atomic<int> steps{0};
  options.on_decode_step = [&](int batch) {
    EXPECT_LE(batch, 2);
    ++steps;
  };
  EngineLanes lanes(&model_->inference_model(), &model_->executor(), options, 3);
  std::vector<std::vector<int>> got(reqs.size());
  std::vector<absl::Notification> done(reqs.size());
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < reqs.size(); ++i) {
    GenerateCallbacks cb;
    cb.on_token = [&, i](const TokenOutput& t) { got[i].push_back(t.token_id); };
    cb.on_done = [&, i](const absl::Status& s) {
      EXPECT_TRUE(s.ok()) << s;
      done[i].Notify();
    };
    absl::StatusOr<uint64_t> id = lanes.Submit(reqs[i], cb);
    ASSERT_TRUE(id.ok()) << id.status();
    ids.push_back(*id);
  }
  // Least loaded first: with nothing running yet, requests go round the three lanes, and each
  // lane's ids are its own residue class, so all five differ.
  EXPECT_EQ(lanes.load(), 5);
  std::vector<uint64_t> lane_of;
  for (uint64_t id : ids) lane_of.push_back((id - 1) % 3);
  EXPECT_THAT(lane_of, ::testing::ElementsAre(0, 1, 2, 0, 1));
  lanes.Start();
  for (auto& d : done) d.WaitForNotification();
  lanes.Stop(/*drain=*/true);
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(got[i], solo[i]) << "request " << i;
  EXPECT_GT(steps.load(), 0);
}

TEST_F(EngineTest, LanesFillToLaneRowsBeforeTheNextLaneGetsAny) {
  EngineOptions options;
  options.lane_rows = 2;
  EngineLanes lanes(&model_->inference_model(), &model_->executor(), options, 2);
  std::vector<Outcome> out(5);
  std::vector<uint64_t> lane_of;
  for (Outcome& o : out) {
    absl::StatusOr<uint64_t> id = lanes.Submit(Params({5, 6}, 3, 0.0f, 0), o.Callbacks());
    ASSERT_TRUE(id.ok()) << id.status();
    lane_of.push_back((*id - 1) % 2);
  }
  // Lane 0 to 2 sequences, then lane 1 to 2, then the least loaded (a tie: the first).
  EXPECT_THAT(lane_of, ::testing::ElementsAre(0, 0, 1, 1, 0));
  lanes.Start();
  for (Outcome& o : out) o.done.WaitForNotification();
  lanes.Stop(/*drain=*/true);
  for (const Outcome& o : out) {
    EXPECT_TRUE(o.status.ok()) << o.status;
    EXPECT_EQ(o.tokens, 3);
  }
}

// A burst of arrivals while a lane's first step is under way must see that lane's sequences:
// they have left the queue but are not in the batch yet until the step ends.
TEST_F(EngineTest, LanesCountTheSequencesOfAStepUnderWay) {
  EngineOptions options;
  options.lane_rows = 2;
  EngineLanes lanes(&model_->inference_model(), &model_->executor(), options, 2);
  lanes.Start();
  Outcome first;
  std::vector<Outcome> later(3);
  std::vector<uint64_t> lane_of;
  absl::Status submitted;
  // Inside the first request's first token, i.e. during the lane's first step, three more
  // arrive: lane 0 holds one sequence, so it takes one more and lane 1 the next two.
  absl::StatusOr<uint64_t> first_id = lanes.Submit(Params({5, 6}, 3, 0.0f, 0), first.Callbacks([&] {
    for (Outcome& o : later) {
      absl::StatusOr<uint64_t> id = lanes.Submit(Params({5, 6}, 3, 0.0f, 0), o.Callbacks());
      if (!id.ok()) {
        submitted = id.status();
        return;
      }
      lane_of.push_back((*id - 1) % 2);
    }
  }));
  ASSERT_TRUE(first_id.ok()) << first_id.status();
  first.done.WaitForNotification();
  // Only the requests that were submitted will finish: waiting on the others would hang.
  for (size_t i = 0; i < lane_of.size(); ++i) later[i].done.WaitForNotification();
  lanes.Stop(/*drain=*/true);
  ASSERT_TRUE(submitted.ok()) << submitted;
  EXPECT_EQ((*first_id - 1) % 2, 0u);
  EXPECT_THAT(lane_of, ::testing::ElementsAre(0, 1, 1));
  for (const Outcome& o : later) EXPECT_EQ(o.tokens, 3) << o.status;
}

TEST_F(EngineTest, LanesCancelReachesTheRightLane) {
  EngineLanes lanes(&model_->inference_model(), &model_->executor(), EngineOptions(), 2);
  Outcome a, b;
  absl::StatusOr<uint64_t> a_id = lanes.Submit(Params({100, 101}, 40, 0.0f, 0), a.Callbacks());
  absl::StatusOr<uint64_t> b_id = lanes.Submit(Params({3, 4}, 20, 0.0f, 0), b.Callbacks());
  ASSERT_TRUE(a_id.ok() && b_id.ok());
  EXPECT_NE(*a_id, *b_id);
  lanes.Cancel(*b_id);  // before Start: answered without running
  lanes.Start();
  a.done.WaitForNotification();
  b.done.WaitForNotification();
  lanes.Stop(true);
  EXPECT_TRUE(a.status.ok()) << a.status;
  EXPECT_EQ(a.tokens, 40);
  EXPECT_EQ(b.status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(b.tokens, 0);
}

TEST_F(EngineTest, BadRequestsNameTheField) {
  Engine& e = model_->engine();
  GenerateCallbacks cb{[](const TokenOutput&) {}, [](const absl::Status&) {}};
  EXPECT_THAT(e.Submit(Params({}, 5, 0, 0), cb).status().message(), HasSubstr("prompt"));
  EXPECT_THAT(e.Submit(Params(std::vector<int>(48, 1), 5, 0, 0), cb).status().message(),
              HasSubstr("prompt: 48 tokens, the context holds 48"));
  EXPECT_THAT(e.Submit(Params({1}, 0, 0, 0), cb).status().message(), HasSubstr("max_tokens"));
  EXPECT_THAT(e.Submit(Params({1}, 5, -1, 0), cb).status().message(), HasSubstr("temperature"));
  EXPECT_THAT(e.Submit(Params({9999}, 5, 0, 0), cb).status().message(), HasSubstr("token id"));
  GenerateParams p = Params({1}, 5, 1, 0);
  p.sampling.top_p = 0;
  EXPECT_THAT(e.Submit(p, cb).status().message(), HasSubstr("top_p"));
}

TEST_F(EngineTest, EchoedPromptCarriesRoutingOfEveryLayer) {
  GenerateParams p = Params({3, 1, 4, 1, 5}, 3, 0.0f, 0);
  p.echo_prompt = true;
  p.want_probs = true;
  std::vector<TokenOutput> outs;
  ASSERT_TRUE(model_->Generate(p, [&](const TokenOutput& t) { outs.push_back(t); }).ok());
  ASSERT_EQ(outs.size(), 8u);
  const ModelConfig& c = model_->config();
  for (size_t i = 0; i < outs.size(); ++i) {
    EXPECT_EQ(outs[i].position, static_cast<int>(i));
    EXPECT_EQ(outs[i].is_prompt, i < 5);
    ASSERT_EQ(outs[i].routing.size(), static_cast<size_t>(c.n_layers));
    for (const LayerRoute& r : outs[i].routing) {
      EXPECT_EQ(r.ids.size(), static_cast<size_t>(c.top_k));
      EXPECT_EQ(r.probs.size(), static_cast<size_t>(c.n_routed()));
      float sum = 0;
      for (float w : r.weights) sum += w;
      EXPECT_NEAR(sum, 1.0f, 1e-5);
      for (size_t j = 1; j < r.weights.size(); ++j) EXPECT_GE(r.weights[j - 1], r.weights[j]);
    }
  }
  EXPECT_TRUE(outs.back().last);
  EXPECT_EQ(outs.back().finish_reason, "length");
}

TEST_F(EngineTest, StopsAtEndOfText) {
  std::vector<int> gen = Run(*model_, Params({11, 12}, 10, 0.0f, 0));
  // Same weights, but the 4th greedy token is declared end-of-text.
  ModelConfig c = testing::TinyConfig();
  c.eos_id = gen[3];
  size_t first = 0;
  while (gen[first] != gen[3]) ++first;
  auto m = Load(c, 4);
  std::string reason;
  std::vector<int> stopped = Run(*m, Params({11, 12}, 10, 0.0f, 0), &reason);
  EXPECT_EQ(reason, "stop");
  EXPECT_EQ(stopped, std::vector<int>(gen.begin(), gen.begin() + first + 1));
}

TEST_F(EngineTest, StopsAtTheContextLength) {
  std::string reason;
  std::vector<int> gen = Run(*model_, Params(std::vector<int>(45, 9), 10, 0.0f, 0), &reason);
  EXPECT_EQ(gen.size(), 3u);  // positions 45, 46, 47 of a 48-token context
  EXPECT_EQ(reason, "length");
}

}  // namespace
}  // namespace moe
