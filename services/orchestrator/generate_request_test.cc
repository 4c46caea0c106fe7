#include "services/orchestrator/generate_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "models/test_util.h"

namespace moe {
namespace {

using ::testing::HasSubstr;

class GenerateRequestTest : public ::testing::Test {
 protected:
  absl::StatusOr<ParsedGenerateRequest> Parse(const moe::v1::GenerateRequest& req) {
    return ParseGenerateRequest(req, config_, *tokenizer_);
  }
  moe::v1::GenerateRequest Hello() {
    moe::v1::GenerateRequest req;
    req.set_prompt("hello");
    return req;
  }
  void ExpectInvalid(const moe::v1::GenerateRequest& req, const std::string& message) {
    absl::StatusOr<ParsedGenerateRequest> p = Parse(req);
    ASSERT_FALSE(p.ok()) << message;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(p.status().message()), HasSubstr(message));
  }

  ModelConfig config_ = testing::TinyConfig();  // context 48; byte tokens
  std::unique_ptr<Tokenizer> tokenizer_ = Tokenizer::Bytes(config_.vocab_size);
};

TEST_F(GenerateRequestTest, OmittedFieldsTakeTheDocumentedDefaults) {
  absl::StatusOr<ParsedGenerateRequest> p = Parse(Hello());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->params.max_new_tokens, kDefaultMaxTokens);
  EXPECT_EQ(p->params.sampling.temperature, kDefaultTemperature);
  EXPECT_EQ(p->params.sampling.top_k, 0);
  EXPECT_EQ(p->params.sampling.top_p, 1.0f);
  EXPECT_NE(p->params.sampling.seed, 0u) << "an omitted seed is drawn, so it can be echoed back";
  EXPECT_EQ(p->params.prompt, tokenizer_->Encode("hello"));
}

TEST_F(GenerateRequestTest, GivenFieldsAreKeptIncludingExplicitZeros) {
  moe::v1::GenerateRequest req = Hello();
  req.set_max_tokens(3);
  req.set_temperature(0);
  req.set_top_k(5);
  req.set_top_p(0.5f);
  req.set_seed(0);
  req.set_echo_prompt(true);
  req.set_include_probs(true);
  absl::StatusOr<ParsedGenerateRequest> p = Parse(req);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->params.max_new_tokens, 3);
  EXPECT_EQ(p->params.sampling.temperature, 0.0f);
  EXPECT_EQ(p->params.sampling.top_k, 5);
  EXPECT_EQ(p->params.sampling.top_p, 0.5f);
  EXPECT_EQ(p->params.sampling.seed, 0u);
  EXPECT_TRUE(p->params.echo_prompt);
  EXPECT_TRUE(p->params.want_probs);
}

TEST_F(GenerateRequestTest, EveryBadFieldIsNamed) {
  ExpectInvalid(moe::v1::GenerateRequest(), "prompt: must not be empty");
  moe::v1::GenerateRequest req = Hello();
  req.set_max_tokens(0);
  ExpectInvalid(req, "max_tokens: must be in [1, 1024], got 0");
  req = Hello();
  req.set_max_tokens(kMaxTokensLimit + 1);
  ExpectInvalid(req, "max_tokens: must be in [1, 1024], got 1025");
  req = Hello();
  req.set_temperature(-1);
  ExpectInvalid(req, "temperature: must be >= 0");
  req = Hello();
  req.set_top_k(-2);
  ExpectInvalid(req, "top_k: must be >= 0");
  req = Hello();
  req.set_top_p(1.5f);
  ExpectInvalid(req, "top_p: must be in (0, 1]");
  req = Hello();
  req.set_prompt(std::string(kMaxPromptBytes + 1, 'a'));
  ExpectInvalid(req, "prompt: 65537 bytes, at most 65536");
  req = Hello();
  req.set_n(0);
  ExpectInvalid(req, "n: must be in [1, 16], got 0");
  req.set_n(17);
  ExpectInvalid(req, "n: must be in [1, 16], got 17");
  req = Hello();
  for (int i = 0; i < 5; ++i) req.add_stop("x");
  ExpectInvalid(req, "stop: at most 4 sequences, got 5");
  req = Hello();
  req.add_stop("x");
  req.add_stop("");
  ExpectInvalid(req, "stop[1]: must be 1 to 64 bytes, got 0");
  req = Hello();
  req.add_stop(std::string(65, 'x'));
  ExpectInvalid(req, "stop[0]: must be 1 to 64 bytes, got 65");
  req = Hello();
  req.set_presence_penalty(2.5f);
  ExpectInvalid(req, "presence_penalty: must be in [-2, 2], got 2.5");
  req = Hello();
  req.set_frequency_penalty(-2.5f);
  ExpectInvalid(req, "frequency_penalty: must be in [-2, 2], got -2.5");
  req = Hello();
  req.set_repetition_penalty(0);
  ExpectInvalid(req, "repetition_penalty: must be in (0, 2], got 0");
  req = Hello();
  req.set_logprobs(-1);
  ExpectInvalid(req, "logprobs: must be in [0, 20], got -1");
  req.set_logprobs(21);
  ExpectInvalid(req, "logprobs: must be in [0, 20], got 21");
}

TEST_F(GenerateRequestTest, SamplingControlsAreOffUnlessGiven) {
  absl::StatusOr<ParsedGenerateRequest> p = Parse(Hello());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->n, 1);
  EXPECT_TRUE(p->stop.empty());
  EXPECT_EQ(p->params.sampling.presence_penalty, 0.0f);
  EXPECT_EQ(p->params.sampling.frequency_penalty, 0.0f);
  EXPECT_EQ(p->params.sampling.repetition_penalty, 1.0f);
  EXPECT_EQ(p->params.sampling.logprobs, -1);

  moe::v1::GenerateRequest req = Hello();
  req.set_n(3);
  req.add_stop("\n");
  req.add_stop(".");
  req.set_presence_penalty(0.5f);
  req.set_frequency_penalty(-0.5f);
  req.set_repetition_penalty(1.2f);
  req.set_logprobs(0);
  p = Parse(req);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->n, 3);
  EXPECT_EQ(p->stop, (std::vector<std::string>{"\n", "."}));
  EXPECT_EQ(p->params.sampling.presence_penalty, 0.5f);
  EXPECT_EQ(p->params.sampling.frequency_penalty, -0.5f);
  EXPECT_EQ(p->params.sampling.repetition_penalty, 1.2f);
  EXPECT_EQ(p->params.sampling.logprobs, 0);
}

TEST_F(GenerateRequestTest, PromptsThatFillTheContextAreRefusedNotTruncated) {
  moe::v1::GenerateRequest req = Hello();
  req.set_prompt(std::string(config_.context_length - 1, 'a'));
  EXPECT_TRUE(Parse(req).ok());
  req.set_prompt(std::string(config_.context_length, 'a'));
  ExpectInvalid(req, "prompt: 48 tokens; the context holds 48, so a prompt may have at most 47");
}

}  // namespace
}  // namespace moe
