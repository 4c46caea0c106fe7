#include "services/orchestrator/openai_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "nlohmann/json.hpp"

namespace moe {
namespace {

using ::testing::HasSubstr;

std::string ParseError(const std::string& body) {
  absl::StatusOr<CompletionsRequest> r = ParseCompletionsBody(body);
  EXPECT_FALSE(r.ok()) << body;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

TEST(OpenAiRequestTest, OmittedFieldsTakeOpenAisDefaults) {
  absl::StatusOr<CompletionsRequest> r =
      ParseCompletionsBody(R"({"model": "m", "prompt": "Hello"})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model, "m");
  ASSERT_EQ(r->prompts.size(), 1u);
  const moe::v1::GenerateRequest& g = r->prompts[0];
  EXPECT_EQ(g.prompt(), "Hello");
  EXPECT_EQ(g.max_tokens(), 16);
  EXPECT_EQ(g.temperature(), 1.0f);
  EXPECT_FALSE(g.has_seed());
  EXPECT_FALSE(g.has_n());
  EXPECT_FALSE(g.has_logprobs());
  EXPECT_FALSE(r->stream);
  EXPECT_FALSE(r->echo);
  EXPECT_EQ(r->logprobs, -1);
}

TEST(OpenAiRequestTest, EveryFieldReachesTheRequestOfEachPrompt) {
  absl::StatusOr<CompletionsRequest> r = ParseCompletionsBody(R"({
      "model": "m", "prompt": ["a", "b"], "max_tokens": 5, "temperature": 0, "top_p": 0.5,
      "top_k": -1, "n": 2, "stop": "\n", "seed": 7, "presence_penalty": 0.5,
      "frequency_penalty": -0.5, "repetition_penalty": 1.1, "logprobs": 3, "stream": true,
      "stream_options": {"include_usage": true}, "best_of": 2, "logit_bias": {}, "user": "u",
      "suffix": null, "moe_routing": true})");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->prompts.size(), 2u);
  EXPECT_EQ(r->prompts[1].prompt(), "b");
  for (const moe::v1::GenerateRequest& g : r->prompts) {
    EXPECT_EQ(g.max_tokens(), 5);
    EXPECT_EQ(g.temperature(), 0.0f);
    EXPECT_EQ(g.top_p(), 0.5f);
    EXPECT_EQ(g.top_k(), 0);
    EXPECT_EQ(g.n(), 2);
    ASSERT_EQ(g.stop_size(), 1);
    EXPECT_EQ(g.stop(0), "\n");
    EXPECT_EQ(g.seed(), 7u);
    EXPECT_EQ(g.presence_penalty(), 0.5f);
    EXPECT_EQ(g.frequency_penalty(), -0.5f);
    EXPECT_EQ(g.repetition_penalty(), 1.1f);
    EXPECT_EQ(g.logprobs(), 3);
    EXPECT_FALSE(g.echo_prompt());
  }
  EXPECT_EQ(r->n, 2);
  EXPECT_EQ(r->logprobs, 3);
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_TRUE(r->routing);
}

TEST(OpenAiRequestTest, BadFieldsAreNamed) {
  EXPECT_THAT(ParseError("{"), HasSubstr("body: not valid JSON"));
  EXPECT_THAT(ParseError("[1]"), HasSubstr("body: must be a JSON object"));
  EXPECT_THAT(ParseError(R"({"prompt": "a"})"), HasSubstr("model: required"));
  EXPECT_THAT(ParseError(R"({"model": "m"})"), HasSubstr("prompt: required"));
  EXPECT_THAT(ParseError(R"({"model": "m", "prompt": [1, 2]})"),
              HasSubstr("prompt: must be a string or a list of strings (token ids"));
  EXPECT_THAT(ParseError(R"({"model": "m", "prompt": []})"), HasSubstr("prompt: must not be"));
  EXPECT_THAT(ParseError(R"({"model": "m", "prompt": "a", "max_tokens": "5"})"),
              HasSubstr("max_tokens: must be an integer, got \"5\""));
  EXPECT_THAT(ParseError(R"({"model": "m", "prompt": "a", "max_tokens": 1.5})"),
              HasSubstr("max_tokens: must be an integer"));
  EXPECT_THAT(ParseError(R"({"model": "m", "prompt": "a", "temperature": "hot"})"),
              HasSubstr("temperature: must be a number"));
  EXPECT_THAT(ParseError(R"({"model": "m", "prompt": "a", "seed": -1})"),
              HasSubstr("seed: must be >= 0"));
  EXPECT_THAT(ParseError(R"({"model": "m", "prompt": "a", "stop": 3})"),
              HasSubstr("stop: must be a string or a list of strings"));
  EXPECT_THAT(ParseError(R"({"model": "m", "prompt": "a", "stream": "yes"})"),
              HasSubstr("stream: must be true or false"));
  EXPECT_THAT(ParseError(R"({"model": "m", "prompt": "a", "best_of": 3})"),
              HasSubstr("best_of: only best_of equal to n (1) is supported, got 3"));
  EXPECT_THAT(ParseError(R"({"model": "m", "prompt": "a", "logit_bias": {"5": 1}})"),
              HasSubstr("logit_bias: is not supported"));
  EXPECT_THAT(ParseError(R"({"model": "m", "prompt": "a", "echo": true, "logprobs": 1})"),
              HasSubstr("echo: not supported together with logprobs"));
  EXPECT_THAT(ParseError(R"({"model": "m", "prompt": "a", "temprature": 1})"),
              HasSubstr("temprature: unknown field"));
  EXPECT_THAT(ParseError(R"({"model": "m", "prompt": "a", "stream_options": {"x": 1}})"),
              HasSubstr("stream_options: unknown field \"x\""));
}

TEST(OpenAiRequestTest, ErrorsTakeOpenAisShapeWithTheFieldAsParam) {
  ApiError e = ApiErrorFrom(absl::InvalidArgumentError("max_tokens: must be in [1, 1024], got 0"));
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.param, "max_tokens");
  const nlohmann::json j = nlohmann::json::parse(ApiErrorJson(e));
  EXPECT_EQ(j["error"]["message"], "max_tokens: must be in [1, 1024], got 0");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "max_tokens");
  EXPECT_TRUE(j["error"]["code"].is_null());
  EXPECT_EQ(ApiErrorFrom(absl::InvalidArgumentError("stop[1]: must be 1 to 64 bytes")).param,
            "stop");
  EXPECT_EQ(ApiErrorFrom(absl::ResourceExhaustedError("orchestrator: 9 requests")).http_status,
            429);
  EXPECT_EQ(ApiErrorFrom(absl::ResourceExhaustedError("orchestrator: 9 requests")).param, "");
  EXPECT_EQ(ApiErrorFrom(absl::UnavailableError("router: down")).http_status, 503);
}

}  // namespace
}  // namespace moe
