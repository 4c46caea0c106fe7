#include "models/tokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <random>

#include "models/test_util.h"
#include "nlohmann/json.hpp"

namespace moe {
namespace {

std::string SourcePath(const std::string& rel) {
  const char* root = std::getenv("MOE_SOURCE_DIR");
  return std::string(root ? root : ".") + "/" + rel;
}

class TokenizerTest : public ::testing::Test {
 protected:
  // A failure here must fail the tests: gtest reports an ASSERT in SetUpTestSuite as skipped
  // tests, and ctest counts skipped tests as passing.
  static void SetUpTestSuite() {
    auto t = Tokenizer::Load(SourcePath("models/brown-moe/tokenizer.model"));
    if (t.ok()) {
      tokenizer_ = t->release();
    } else {
      load_error_ = new absl::Status(t.status());
    }
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete load_error_;
  }
  void SetUp() override { ASSERT_NE(tokenizer_, nullptr) << *load_error_; }
  static Tokenizer* tokenizer_;
  static absl::Status* load_error_;
};
Tokenizer* TokenizerTest::tokenizer_ = nullptr;
absl::Status* TokenizerTest::load_error_ = nullptr;

TEST_F(TokenizerTest, EncodesExactlyLikeTheSentencePieceLibrary) {
  // Made by tests/reference/make_tokenizer_cases.py with Python's sentencepiece.
  std::ifstream in(SourcePath("tests/data/tokenizer_cases.json"));
  ASSERT_TRUE(in) << "missing tests/data/tokenizer_cases.json";
  nlohmann::json cases = nlohmann::json::parse(in);
  ASSERT_GT(cases.size(), 5u);
  for (const auto& c : cases) {
    const std::string text = c["text"].get<std::string>();
    EXPECT_EQ(tokenizer_->Encode(text), c["ids"].get<std::vector<int>>()) << text;
  }
}

TEST_F(TokenizerTest, RefusesFilesThatAreNotModels) {
  const std::string dir = testing::TempDir("badspm");
  std::ofstream(dir + "/bad.model") << "definitely not a protobuf \xff\xff\xff\xff";
  EXPECT_FALSE(Tokenizer::Load(dir + "/bad.model").ok());
  EXPECT_EQ(Tokenizer::Load(dir + "/none.model").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(TokenizerTest, RoundTripsEnglishEmojiAndInvalidUtf8) {
  const std::string cases[] = {
      "The quick brown fox.",
      "  leading and trailing spaces  \n\ttabs",
      "emoji \xF0\x9F\x98\x80 and \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD, accents caf\xC3\xA9",
      std::string("invalid \xff\xfe bytes \xc3 truncated \xe2\x82"),
      std::string("\0nul inside\0", 12),
      "",
  };
  for (const std::string& text : cases) {
    EXPECT_EQ(tokenizer_->Decode(tokenizer_->Encode(text)), text);
  }
}

// Found by fuzzing (tests/fuzz/corpus/tokenizer/crash-roundtrip): pieces spell a space with
// U+2581, so a literal U+2581 in the text came back as a space.
TEST_F(TokenizerTest, RoundTripsTheSpaceMarkItself) {
  for (const std::string text : {"\xE2\x96\x81",
                                 "a \xE2\x96\x81"
                                 "b\xE2\x96\x81\xE2\x96\x81 c"}) {
    EXPECT_EQ(tokenizer_->Decode(tokenizer_->Encode(text)), text);
  }
}

TEST_F(TokenizerTest, RoundTripsArbitraryBytes) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::string text(rng() % 64, '\0');
    for (char& c : text) c = static_cast<char>(rng() & 0xff);
    EXPECT_EQ(tokenizer_->Decode(tokenizer_->Encode(text)), text);
  }
}

TEST_F(TokenizerTest, NeverMapsToUnknown) {
  for (int id : tokenizer_->Encode("\xE4\xB8\xAD\xE6\x96\x87 \xff")) EXPECT_NE(id, 0);
}

TEST_F(TokenizerTest, StreamDecoderKeepsMultiByteCharactersWhole) {
  const std::string text =
      "a\xF0\x9F\x98\x80"
      "b\xC3\xA9";
  std::vector<int> ids = tokenizer_->Encode(text);
  StreamDecoder decoder(tokenizer_);
  std::string out;
  for (int id : ids) {
    std::string chunk = decoder.Next(id);
    EXPECT_EQ(SanitizeUtf8(chunk), chunk) << "chunk split a character";
    out += chunk;
  }
  out += decoder.Finish();
  EXPECT_EQ(out, text);
}

TEST(ByteTokenizerTest, RoundTripsBytes) {
  auto t = Tokenizer::Bytes(300);
  const std::string text("\x00\xff hello", 8);
  EXPECT_EQ(t->Decode(t->Encode(text)), text);
  EXPECT_EQ(t->Encode("A")[0], 3 + 'A');
}

}  // namespace
}  // namespace moe
