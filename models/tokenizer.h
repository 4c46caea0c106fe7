// Text <-> token ids. Reads SentencePiece BPE models (byte fallback, no dummy prefix) and encodes
// with SentencePiece's merge rule, in our own code: Debian's libsentencepiece carries a private
// protobuf that cannot share a process with gRPC's. Every byte string round-trips exactly,
// invalid UTF-8 included. Torch-free. Thread-safe after construction (const methods).
#ifndef MOE_MODELS_TOKENIZER_H_
#define MOE_MODELS_TOKENIZER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "models/utf8.h"  // SanitizeUtf8, for the callers that turn token bytes into text

namespace moe {

class Tokenizer {
 public:
  // A SentencePiece model trained with byte_fallback and without a dummy prefix.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& path);
  // A tokenizer of raw bytes for models without one: id 3 + b is byte b, id 2 end-of-text;
  // other ids decode to nothing. REQUIRES: vocab_size >= 259.
  static std::unique_ptr<Tokenizer> Bytes(int vocab_size);
  ~Tokenizer();

  std::vector<int> Encode(std::string_view text) const;
  // Concatenated bytes of the tokens (may be invalid UTF-8 if the tokens are).
  std::string Decode(absl::Span<const int> ids) const;
  // One token's bytes; empty for control tokens and out-of-range ids.
  const std::string& TokenBytes(int id) const;
  int vocab_size() const { return static_cast<int>(bytes_.size()); }
  int eos_id() const { return 2; }
  bool is_sentencepiece() const { return sentencepiece_; }

 private:
  Tokenizer() = default;
  std::vector<int> EncodeValidUtf8(std::string_view text) const;

  bool sentencepiece_ = false;
  absl::flat_hash_map<std::string, std::pair<float, int>> merges_;  // piece -> (score, id)
  std::vector<std::string> bytes_;                                  // id -> decoded bytes
  int byte_piece_[256] = {};  // byte -> id of its <0xNN> piece
};

// Turns a stream of tokens into text chunks that never split a UTF-8 character: a multi-byte
// character spread over several byte tokens comes out whole. Not thread-safe; one per sequence.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer* tokenizer) : tokenizer_(tokenizer) {}
  // The text that became complete with this token (possibly empty).
  std::string Next(int id);
  // Whatever is still held back, sanitized.
  std::string Finish();

 private:
  const Tokenizer* tokenizer_;
  std::string pending_;
};

}  // namespace moe

#endif  // MOE_MODELS_TOKENIZER_H_
