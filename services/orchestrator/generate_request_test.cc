#include "services/orchestrator/generate_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "models/test_util.h"

namespace moe {
namespace {

using ::testing::HasSubstr;

class GenerateRequestTest : public ::testing::Test {
 protected:
  absl::StatusOr<GenerateParams> Parse(const moe::v1::GenerateRequest& req) {
    return ParseGenerateRequest(req, config_, *tokenizer_);
  }
  moe::v1::GenerateRequest Hello() {
    moe::v1::GenerateRequest req;
    req.set_prompt("hello");
    return req;
  }
  void ExpectInvalid(const moe::v1::GenerateRequest& req, const std::string& message) {
    absl::StatusOr<GenerateParams> p = Parse(req);
    ASSERT_FALSE(p.ok()) << message;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(p.status().message()), HasSubstr(message));
  }

  ModelConfig config_ = testing::TinyConfig();  // context 48; byte tokens
  std::unique_ptr<Tokenizer> tokenizer_ = Tokenizer::Bytes(config_.vocab_size);
};

TEST_F(GenerateRequestTest, OmittedFieldsTakeTheDocumentedDefaults) {
  absl::StatusOr<GenerateParams> p = Parse(Hello());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->max_new_tokens, kDefaultMaxTokens);
  EXPECT_EQ(p->sampling.temperature, kDefaultTemperature);
  EXPECT_EQ(p->sampling.top_k, 0);
  EXPECT_EQ(p->sampling.top_p, 1.0f);
  EXPECT_NE(p->sampling.seed, 0u) << "an omitted seed is drawn, so it can be echoed back";
  EXPECT_EQ(p->prompt, tokenizer_->Encode("hello"));
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
  absl::StatusOr<GenerateParams> p = Parse(req);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->max_new_tokens, 3);
  EXPECT_EQ(p->sampling.temperature, 0.0f);
  EXPECT_EQ(p->sampling.top_k, 5);
  EXPECT_EQ(p->sampling.top_p, 0.5f);
  EXPECT_EQ(p->sampling.seed, 0u);
  EXPECT_TRUE(p->echo_prompt);
  EXPECT_TRUE(p->want_probs);
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
