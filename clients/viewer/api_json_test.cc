#include "clients/viewer/api_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace moe::viewer {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

moe::v1::LayerRouting Routing(int layer) {
  moe::v1::LayerRouting r;
  r.set_layer(layer);
  auto* c = r.add_experts();
  c->set_id(5);
  c->set_expert(2);
  c->set_micro(1);
  c->set_weight(0.75f);
  c->set_pool("pool-b");
  auto* zero = r.add_experts();  // every field zero: must still be printed
  zero->set_weight(0.25f);
  auto* s = r.add_shared();
  s->set_expert(0);
  s->set_pool("pool-a");
  r.set_latency_ms(1.5f);
  return r;
}

// Found by fuzzing (tests/fuzz/corpus/viewer_api/crash-number-overflow): a number too large for
// a double threw nlohmann's out_of_range, which nothing caught, and ended the viewer.
TEST(ApiJsonTest, NumbersTooLargeForADoubleAreABadBody) {
  for (const char* body : {"55E555", "{\"top_k\": 1e999}", "{\"noise_std\": -4e400}"}) {
    absl::StatusOr<moe::v1::RoutingPolicy> policy = ApplyPolicyBody(body, moe::v1::RoutingPolicy());
    ASSERT_FALSE(policy.ok()) << body;
    EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_THAT(policy.status().message(), HasSubstr("not valid JSON")) << body;
    EXPECT_FALSE(ParseGenerateBody(body).ok()) << body;
  }
}

TEST(ApiJsonTest, GenerateTokenPrintsZeroFieldsAndKeepsUint64SeedExact) {
  moe::v1::GenerateResponse response;
  response.set_request_id("req-1");
  response.set_position(0);
  response.set_token_id(17);
  response.set_text(" the");
  response.set_is_prompt(false);
  response.set_seed(18446744073709551615ull);
  *response.add_routing() = Routing(0);
  const json j = GenerateTokenJson(response);
  EXPECT_EQ(j["position"], 0);  // the page reads position; 0 must not be missing
  EXPECT_EQ(j["is_prompt"], false);
  EXPECT_EQ(j["text"], " the");
  EXPECT_EQ(j["token_id"], 17);
  EXPECT_EQ(j["finish_reason"], "");
  EXPECT_EQ(j["seed"], "18446744073709551615");
  ASSERT_EQ(j["routing"].size(), 1u);
  const json& r = j["routing"][0];
  EXPECT_EQ(r["layer"], 0);
  EXPECT_EQ(r["experts"][0]["id"], 5);
  EXPECT_EQ(r["experts"][0]["expert"], 2);
  EXPECT_EQ(r["experts"][0]["micro"], 1);
  EXPECT_DOUBLE_EQ(r["experts"][0]["weight"].get<double>(), 0.75);
  EXPECT_EQ(r["experts"][0]["pool"], "pool-b");
  EXPECT_EQ(r["experts"][1]["id"], 0);
  EXPECT_EQ(r["experts"][1]["expert"], 0);
  EXPECT_EQ(r["shared"][0]["expert"], 0);
  EXPECT_TRUE(r["probs"].is_array());
  EXPECT_DOUBLE_EQ(r["latency_ms"].get<double>(), 1.5);
}

TEST(ApiJsonTest, GenerateDoneCarriesFinishReasonAndCounts) {
  const json j = GenerateDoneJson({"req-1", "length", 42, 6, 8});
  EXPECT_EQ(j["finish_reason"], "length");
  EXPECT_EQ(j["seed"], "42");
  EXPECT_EQ(j["prompt_tokens"], 6);
  EXPECT_EQ(j["generated_tokens"], 8);
}

TEST(ApiJsonTest, LiveTokenLiftsTheRoutingToTheTopLevel) {
  moe::v1::RoutingEvent event;
  event.set_time_unix_micros(1234);
  auto* t = event.mutable_token();
  t->set_request_id("req-7");
  t->set_position(3);
  t->set_token_id(99);
  t->set_text("\n");
  t->set_is_prompt(true);
  *t->mutable_routing() = Routing(2);
  const json j = LiveTokenJson(event);
  // live.js onLiveToken: normRouting(raw, ...) reads layer/experts/shared at the top level.
  EXPECT_FALSE(j.contains("routing"));
  EXPECT_EQ(j["layer"], 2);
  EXPECT_EQ(j["experts"].size(), 2u);
  EXPECT_EQ(j["experts"][0]["expert"], 2);
  EXPECT_EQ(j["shared"][0]["pool"], "pool-a");
  EXPECT_EQ(j["request_id"], "req-7");
  EXPECT_EQ(j["position"], 3);
  EXPECT_EQ(j["text"], "\n");
  EXPECT_EQ(j["is_prompt"], true);
  EXPECT_EQ(j["time_unix_micros"], "1234");
}

TEST(ApiJsonTest, LoadKeepsEveryLayerAndCount) {
  moe::v1::RoutingEvent event;
  auto* load = event.mutable_load();
  load->set_interval_ms(500);
  load->set_tokens_per_second(12.5);
  auto* l0 = load->add_layers();
  l0->set_layer(0);
  for (int64_t c : {0, 3, 0, 1}) l0->add_tokens(c);
  l0->set_cv(0.5);
  auto* l1 = load->add_layers();
  l1->set_layer(1);
  const json j = LoadJson(event);
  EXPECT_DOUBLE_EQ(j["tokens_per_second"].get<double>(), 12.5);
  ASSERT_EQ(j["layers"].size(), 2u);
  EXPECT_EQ(j["layers"][0]["layer"], 0);
  ASSERT_EQ(j["layers"][0]["tokens"].size(), 4u);
  // int64 in the proto3 JSON mapping: strings; live.js maps them through Number.
  EXPECT_EQ(j["layers"][0]["tokens"][1], "3");
  EXPECT_EQ(j["layers"][1]["layer"], 1);
  EXPECT_EQ(j["layers"][1]["max_over_mean"], 0);
  EXPECT_EQ(j["interval_ms"], "500");
}

TEST(ApiJsonTest, InfoParsesProfilesAndLeavesTheRawStringOut) {
  moe::v1::ModelInfo info;
  info.set_name("brown-moe");
  info.set_n_layers(3);
  info.set_n_experts(8);
  info.set_expert_profiles_json(R"({"layers": [{"layer": 0, "experts": []}]})");
  moe::v1::Placement placement;
  placement.add_pools()->set_name("pool-a");
  const json j = InfoJson(info, &placement, "127.0.0.1:50050");
  EXPECT_EQ(j["model"]["n_layers"], 3);
  EXPECT_EQ(j["model"]["n_shared"], 0);
  EXPECT_FALSE(j["model"].contains("expert_profiles_json"));
  EXPECT_EQ(j["profiles"]["layers"][0]["layer"], 0);
  EXPECT_EQ(j["placement"]["pools"][0]["name"], "pool-a");
  EXPECT_EQ(j["placement"]["pools"][0]["healthy"], false);
}

TEST(ApiJsonTest, InfoWithoutProfilesOrPlacementHasNulls) {
  moe::v1::ModelInfo info;
  json j = InfoJson(info, nullptr, "x");
  EXPECT_TRUE(j["profiles"].is_null());
  EXPECT_TRUE(j["placement"].is_null());
  info.set_expert_profiles_json("{not json");
  j = InfoJson(info, nullptr, "x");
  EXPECT_TRUE(j["profiles"].is_null());
  EXPECT_THAT(j["profiles_error"].get<std::string>(), HasSubstr("expert_profiles_json"));
}

TEST(ApiJsonTest, ErrorsCarryTheCodeNameAndAnHttpStatus) {
  const json j = ErrorJson(absl::InvalidArgumentError("max_tokens: must be in [1, 1024], got 0"));
  EXPECT_EQ(j["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(j["message"], "max_tokens: must be in [1, 1024], got 0");
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kDeadlineExceeded), 504);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kInternal), 500);
}

TEST(ApiJsonTest, GenerateBodyTakesThePagesParameters) {
  absl::StatusOr<moe::v1::GenerateRequest> r = ParseGenerateBody(
      R"({"prompt": "The jury", "max_tokens": 8, "temperature": 0, "top_k": 0, "top_p": 1,
          "seed": 18446744073709551615})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt(), "The jury");
  EXPECT_TRUE(r->has_max_tokens());
  EXPECT_EQ(r->max_tokens(), 8);
  EXPECT_TRUE(r->has_temperature());
  EXPECT_EQ(r->temperature(), 0.f);
  EXPECT_EQ(r->seed(), 18446744073709551615ull);
  EXPECT_TRUE(r->echo_prompt());  // the page shows the prompt tokens first
}

TEST(ApiJsonTest, GenerateBodyTakesTheSamplingControls) {
  absl::StatusOr<moe::v1::GenerateRequest> r = ParseGenerateBody(
      R"({"prompt": "x", "n": 2, "stop": ["\n", "."], "presence_penalty": 0.5,
          "frequency_penalty": -1, "repetition_penalty": 1.2, "logprobs": 3})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->n(), 2);
  ASSERT_EQ(r->stop_size(), 2);
  EXPECT_EQ(r->stop(0), "\n");
  EXPECT_EQ(r->presence_penalty(), 0.5f);
  EXPECT_EQ(r->frequency_penalty(), -1.0f);
  EXPECT_EQ(r->repetition_penalty(), 1.2f);
  EXPECT_EQ(r->logprobs(), 3);
  r = ParseGenerateBody(R"({"prompt": "x", "stop": "end"})");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->stop_size(), 1);
  EXPECT_FALSE(r->has_n());
  EXPECT_FALSE(r->has_logprobs());
  EXPECT_FALSE(ParseGenerateBody(R"({"stop": [1]})").ok());
  EXPECT_FALSE(ParseGenerateBody(R"({"presence_penalty": "a"})").ok());
}

TEST(ApiJsonTest, GenerateBodyOmittedAndNullFieldsStayUnset) {
  absl::StatusOr<moe::v1::GenerateRequest> r =
      ParseGenerateBody(R"({"prompt": "x", "max_tokens": null, "seed": "123"})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->has_max_tokens());  // the orchestrator's default applies
  EXPECT_FALSE(r->has_temperature());
  EXPECT_EQ(r->seed(), 123u);
}

TEST(ApiJsonTest, GenerateBodyErrorsNameTheField) {
  struct Case {
    const char* body;
    const char* field;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"max_tokens": "abc"})", "max_tokens: must be an integer, got \"abc\""},
           {R"({"top_k": 1.5})", "top_k: must be an integer, got 1.5"},
           {R"({"max_tokens": 1e12})", "max_tokens: must be in ["},
           {R"({"prompt": 3})", "prompt: must be a string, got 3"},
           {R"({"temperature": "hot"})", "temperature: must be a number"},
           {R"({"seed": -1})", "seed: must be an integer in [0, 2^64 - 1]"},
           {R"({"seed": "12a"})", "seed: must be an integer"},
           {R"({"include_probs": 1})", "include_probs: must be true or false"},
           {R"({"prompt": "x", "temprature": 1})", "\"temprature\": unknown field"},
           {R"([1, 2])", "request body: must be a JSON object, got array"},
           {R"({"prompt": )", "request body: not valid JSON"},
       }) {
    absl::StatusOr<moe::v1::GenerateRequest> r = ParseGenerateBody(c.body);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.field)) << c.body;
  }
}

TEST(ApiJsonTest, PolicyBodyChangesOnlyTheFieldsGiven) {
  moe::v1::RoutingPolicy current;
  current.set_top_k(2);
  current.set_noise_std(0.1f);
  current.set_noise_seed(7);
  absl::StatusOr<moe::v1::RoutingPolicy> p =
      ApplyPolicyBody(R"({"capacity_factor": 1.25, "noise_std": 0})", current);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->top_k(), 2);
  EXPECT_EQ(p->noise_std(), 0.f);
  EXPECT_EQ(p->capacity_factor(), 1.25f);
  EXPECT_EQ(p->noise_seed(), 7u);
  p = ApplyPolicyBody(R"({"top_k": "two"})", current);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("top_k: must be an integer"));
  p = ApplyPolicyBody(R"({"capacity": 1})", current);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("\"capacity\": unknown field"));
}

}  // namespace
}  // namespace moe::viewer
