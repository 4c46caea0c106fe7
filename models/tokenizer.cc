#include "models/tokenizer.h"


#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "models/sentencepiece_shim.h"

namespace moe {
namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 if none starts there. `complete` tells
// whether a truncated-but-valid prefix at the end of s counts as invalid (0) or as its length.
size_t Utf8SequenceLength(std::string_view s, size_t i, bool* truncated) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t min;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) {
    n = 2, min = 0x80;
  } else if ((c & 0xf0) == 0xe0) {
    n = 3, min = 0x800;
  } else if ((c & 0xf8) == 0xf0) {
    n = 4, min = 0x10000;
  } else {
    return 0;
  }
  uint32_t cp = c & (0x7f >> n);
  for (size_t j = 1; j < n; ++j) {
    if (i + j >= s.size()) {
      if (truncated != nullptr) *truncated = true;
      return 0;
    }
    const unsigned char cc = static_cast<unsigned char>(s[i + j]);
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

}  // namespace

Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->sp_ = std::make_unique<spm::Processor>();
  if (std::string error = t->sp_->Load(path); !error.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a SentencePiece model: ", error));
  }
  const int n = t->sp_->size();
  t->bytes_.resize(n);
  std::fill(std::begin(t->byte_piece_), std::end(t->byte_piece_), -1);
  for (int id = 0; id < n; ++id) {
    const std::string piece = t->sp_->IdToPiece(id);
    if (t->sp_->IsControl(id) || t->sp_->IsUnknown(id)) continue;
    if (t->sp_->IsByte(id)) {
      // "<0xNN>"
      const int b = std::stoi(piece.substr(3, 2), nullptr, 16);
      t->bytes_[id] = std::string(1, static_cast<char>(b));
      t->byte_piece_[b] = id;
    } else {
      t->bytes_[id] = absl::StrReplaceAll(piece, {{"\xe2\x96\x81", " "}});
    }
  }
  for (int b = 0; b < 256; ++b) {
    if (t->byte_piece_[b] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": the model has no byte fallback piece for byte ", b));
    }
  }
  return t;
}

std::unique_ptr<Tokenizer> Tokenizer::Bytes(int vocab_size) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->bytes_.resize(vocab_size);
  for (int b = 0; b < 256; ++b) {
    t->bytes_[3 + b] = std::string(1, static_cast<char>(b));
    t->byte_piece_[b] = 3 + b;
  }
  return t;
}

std::vector<int> Tokenizer::Encode(std::string_view text) const {
  std::vector<int> ids;
  if (sp_ == nullptr) {
    for (unsigned char c : text) ids.push_back(byte_piece_[c]);
    return ids;
  }
  // SentencePiece only sees valid UTF-8; invalid bytes go straight to their byte pieces.
  size_t start = 0, i = 0;
  auto flush = [&](size_t end) {
    if (end > start) {
      std::vector<int> part = sp_->Encode(text.substr(start, end - start));
      ids.insert(ids.end(), part.begin(), part.end());
    }
  };
  while (i < text.size()) {
    const size_t n = Utf8SequenceLength(text, i, nullptr);
    if (n == 0) {
      flush(i);
      ids.push_back(byte_piece_[static_cast<unsigned char>(text[i])]);
      start = ++i;
    } else {
      i += n;
    }
  }
  flush(text.size());
  return ids;
}

std::string Tokenizer::Decode(absl::Span<const int> ids) const {
  std::string out;
  for (int id : ids) out += TokenBytes(id);
  return out;
}

const std::string& Tokenizer::TokenBytes(int id) const {
  static const std::string* const kEmpty = new std::string();
  if (id < 0 || id >= static_cast<int>(bytes_.size())) return *kEmpty;
  return bytes_[id];
}

std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const size_t n = Utf8SequenceLength(s, i, nullptr);
    if (n == 0) {
      out += "\xef\xbf\xbd";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string StreamDecoder::Next(int id) {
  pending_ += tokenizer_->TokenBytes(id);
  // Emit everything except a trailing, still-valid-so-far partial character.
  size_t i = 0, keep_from = pending_.size();
  while (i < pending_.size()) {
    bool truncated = false;
    const size_t n = Utf8SequenceLength(pending_, i, &truncated);
    if (truncated) {
      keep_from = i;
      break;
    }
    i += n == 0 ? 1 : n;
  }
  std::string out = SanitizeUtf8(std::string_view(pending_).substr(0, keep_from));
  pending_.erase(0, keep_from);
  return out;
}

std::string StreamDecoder::Finish() {
  std::string out = SanitizeUtf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace moe
