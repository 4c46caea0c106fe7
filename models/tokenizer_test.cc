#include "models/tokenizer.h"

#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "models/sentencepiece_shim.h"
#include "models/test_util.h"

namespace moe {
namespace {

// Trains a small byte-fallback BPE model like the shipped one, so the test does not depend on
// the shipped checkpoint.
std::string TrainTinyModel() {
  const std::string dir = testing::TempDir("spm");
  std::ofstream corpus(dir + "/corpus.txt");
  for (int i = 0; i < 200; ++i) {
    corpus << "The quick brown fox jumps over the lazy dog number " << i << ".\n"
           << "A stitch in time saves nine; all that glitters is not gold.\n";
  }
  corpus.close();
  const std::string error = spm::Train(
      "--input=" + dir + "/corpus.txt --model_prefix=" + dir +
      "/tok --vocab_size=320 --model_type=bpe --byte_fallback=true --character_coverage=1.0 "
      "--normalization_rule_name=identity --add_dummy_prefix=false "
      "--remove_extra_whitespaces=false --split_digits=true --minloglevel=2 "
      "--unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1");
  EXPECT_EQ(error, "");
  return dir + "/tok.model";
}

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t = Tokenizer::Load(TrainTinyModel());
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = t->release();
  }
  static void TearDownTestSuite() { delete tokenizer_; }
  static Tokenizer* tokenizer_;
};
Tokenizer* TokenizerTest::tokenizer_ = nullptr;

TEST_F(TokenizerTest, RoundTripsEnglishEmojiAndInvalidUtf8) {
  const std::string cases[] = {
      "The quick brown fox.",
      "  leading and trailing spaces  \n\ttabs",
      "emoji \xF0\x9F\x98\x80 and \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD, accents caf\xC3\xA9",
      std::string("invalid \xff\xfe bytes \xc3 truncated \xe2\x82", 33),
      std::string("\0nul inside\0", 12),
      "",
  };
  for (const std::string& text : cases) {
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
  const std::string text = "a\xF0\x9F\x98\x80" "b\xC3\xA9";
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

TEST(SanitizeUtf8Test, ReplacesInvalidSequences) {
  EXPECT_EQ(SanitizeUtf8("ok"), "ok");
  EXPECT_EQ(SanitizeUtf8("a\xff" "b"), "a\xef\xbf\xbd" "b");
  EXPECT_EQ(SanitizeUtf8("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // surrogate
}

TEST(ByteTokenizerTest, RoundTripsBytes) {
  auto t = Tokenizer::Bytes(300);
  const std::string text("\x00\xff hello", 8);
  EXPECT_EQ(t->Decode(t->Encode(text)), text);
  EXPECT_EQ(t->Encode("A")[0], 3 + 'A');
}

}  // namespace
}  // namespace moe
