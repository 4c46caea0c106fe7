// The tokenizer on outside bytes: any text encodes to ids in range that decode back to exactly
// the same bytes (invalid UTF-8 included); any ids (in range or not) decode without fault, and
// streaming them gives the same text as decoding them whole once it is valid UTF-8.
#include <memory>

#include "models/tokenizer.h"
#include "models/utf8.h"
#include "tests/fuzz/fuzz_util.h"

namespace {
const moe::Tokenizer* tokenizer = nullptr;
// Sanitizing replaces each invalid byte with U+FFFD's three bytes, so only valid text is unchanged.
bool IsValidUtf8(const std::string& s) { return moe::SanitizeUtf8(s) == s; }
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  auto loaded = moe::Tokenizer::Load(moe::fuzz::SourcePath("models/brown-moe/tokenizer.model"));
  FUZZ_CHECK(loaded.ok(), loaded.status().ToString());
  tokenizer = loaded->release();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moe::fuzz::ByteReader in(data, size);
  if (in.Byte() % 2 == 0) {
    const std::string text = in.Rest();
    const std::vector<int> ids = tokenizer->Encode(text);
    for (int id : ids) {
      FUZZ_CHECK(id >= 0 && id < tokenizer->vocab_size(), "id out of range: " + std::to_string(id));
    }
    const std::string back = tokenizer->Decode(ids);
    FUZZ_CHECK(back == text, "decode(encode(text)) != text: " + std::to_string(text.size()) +
                                 " bytes in, " + std::to_string(back.size()) + " out");
    return 0;
  }
  std::vector<int> ids;
  while (in.left() >= 2) ids.push_back(in.Take<int16_t>());  // negative and too large too
  const std::string whole = tokenizer->Decode(ids);
  moe::StreamDecoder stream(tokenizer);
  std::string streamed;
  for (int id : ids) streamed += stream.Next(id);
  streamed += stream.Finish();
  if (IsValidUtf8(whole)) FUZZ_CHECK(streamed == whole, "streamed text != decoded text");
  FUZZ_CHECK(IsValidUtf8(streamed), "the stream decoder emitted invalid UTF-8");
  return 0;
}
