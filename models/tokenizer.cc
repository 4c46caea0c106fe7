#include "models/tokenizer.h"

#include <cstring>
#include <fstream>
#include <queue>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace moe {

Tokenizer::~Tokenizer() = default;

namespace {

// Just enough of the protobuf wire format to read a SentencePiece ModelProto.
class WireReader {
 public:
  explicit WireReader(std::string_view data)
      : p_(reinterpret_cast<const uint8_t*>(data.data())), end_(p_ + data.size()) {}
  bool done() const { return p_ >= end_; }
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && p_ < end_; shift += 7) {
      const uint8_t b = *p_++;
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  bool Tag(int* field, int* wire) {
    uint64_t t;
    if (!Varint(&t)) return false;
    *field = static_cast<int>(t >> 3);
    *wire = static_cast<int>(t & 7);
    return true;
  }
  bool Bytes(std::string_view* out) {
    uint64_t n;
    if (!Varint(&n) || n > static_cast<uint64_t>(end_ - p_)) return false;
    *out = std::string_view(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return true;
  }
  bool Fixed32(uint32_t* v) {
    if (end_ - p_ < 4) return false;
    *v = p_[0] | (p_[1] << 8) | (p_[2] << 16) | (static_cast<uint32_t>(p_[3]) << 24);
    p_ += 4;
    return true;
  }
  bool Skip(int wire) {
    uint64_t v;
    uint32_t f;
    std::string_view b;
    switch (wire) {
      case 0:
        return Varint(&v);
      case 1:
        return end_ - p_ >= 8 ? (p_ += 8, true) : false;
      case 2:
        return Bytes(&b);
      case 5:
        return Fixed32(&f);
      default:
        return false;
    }
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// SentencePiece piece types (sentencepiece_model.proto).
enum PieceType {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6
};

struct Piece {
  std::string text;
  float score = 0;
  int type = kNormal;
};

absl::StatusOr<std::vector<Piece>> ParseModel(std::string_view data) {
  std::vector<Piece> pieces;
  bool add_dummy_prefix = true;  // proto2 default
  WireReader model(data);
  const absl::Status corrupt = absl::DataLossError("corrupt SentencePiece model");
  while (!model.done()) {
    int field, wire;
    if (!model.Tag(&field, &wire)) return corrupt;
    std::string_view sub;
    if (field == 1 && wire == 2) {  // repeated SentencePiece pieces
      if (!model.Bytes(&sub)) return corrupt;
      Piece piece;
      WireReader r(sub);
      while (!r.done()) {
        int f, w;
        if (!r.Tag(&f, &w)) return corrupt;
        std::string_view text;
        uint32_t bits;
        uint64_t v;
        if (f == 1 && w == 2) {
          if (!r.Bytes(&text)) return corrupt;
          piece.text = std::string(text);
        } else if (f == 2 && w == 5) {
          if (!r.Fixed32(&bits)) return corrupt;
          std::memcpy(&piece.score, &bits, 4);
        } else if (f == 3 && w == 0) {
          if (!r.Varint(&v)) return corrupt;
          piece.type = static_cast<int>(v);
        } else if (!r.Skip(w)) {
          return corrupt;
        }
      }
      pieces.push_back(std::move(piece));
    } else if (field == 3 && wire == 2) {  // NormalizerSpec
      if (!model.Bytes(&sub)) return corrupt;
      WireReader r(sub);
      while (!r.done()) {
        int f, w;
        uint64_t v;
        if (!r.Tag(&f, &w)) return corrupt;
        if (f == 3 && w == 0) {
          if (!r.Varint(&v)) return corrupt;
          add_dummy_prefix = v != 0;
        } else if (!r.Skip(w)) {
          return corrupt;
        }
      }
    } else if (!model.Skip(wire)) {
      return corrupt;
    }
  }
  if (pieces.empty()) return absl::InvalidArgumentError("not a SentencePiece model: no pieces");
  if (add_dummy_prefix) {
    return absl::InvalidArgumentError(
        "SentencePiece model was trained with add_dummy_prefix; retrain with "
        "--add_dummy_prefix=false so that token-by-token decoding is exact");
  }
  return pieces;
}

constexpr char kSpaceMark[] = "\xe2\x96\x81";  // U+2581, SentencePiece's visible space

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream buf;
  buf << in.rdbuf();
  absl::StatusOr<std::vector<Piece>> pieces = ParseModel(buf.str());
  if (!pieces.ok())
    return absl::Status(pieces.status().code(),
                        absl::StrCat(path, ": ", pieces.status().message()));
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->sentencepiece_ = true;
  const int n = static_cast<int>(pieces->size());
  t->bytes_.resize(n);
  std::fill(std::begin(t->byte_piece_), std::end(t->byte_piece_), -1);
  for (int id = 0; id < n; ++id) {
    const Piece& piece = (*pieces)[id];
    if (piece.type == kByte) {
      // "<0xNN>"
      const int b = std::stoi(piece.text.substr(3, 2), nullptr, 16);
      t->bytes_[id] = std::string(1, static_cast<char>(b));
      t->byte_piece_[b] = id;
    } else if (piece.type == kNormal || piece.type == kUserDefined) {
      t->bytes_[id] = absl::StrReplaceAll(piece.text, {{kSpaceMark, " "}});
      t->merges_[piece.text] = {piece.score, id};
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

std::vector<int> Tokenizer::EncodeValidUtf8(std::string_view text) const {
  // SentencePiece's BPE: start from characters, repeatedly merge the adjacent pair whose
  // concatenation is the highest-scoring piece (leftmost first on ties), then map leftovers
  // that are not pieces to their bytes.
  const std::string s =
      absl::StrReplaceAll(absl::string_view(text.data(), text.size()), {{" ", kSpaceMark}});
  struct Symbol {
    size_t begin, size;
    int prev, next;
  };
  std::vector<Symbol> sym;
  for (size_t i = 0; i < s.size();) {
    size_t n = DecodeUtf8(s, i).length;
    if (n == 0) n = 1;
    sym.push_back({i, n, static_cast<int>(sym.size()) - 1, static_cast<int>(sym.size()) + 1});
    i += n;
  }
  if (!sym.empty()) sym.back().next = -1;
  struct Pair {
    float score;
    int left, right;
    size_t size;
    bool operator<(const Pair& o) const {
      return score < o.score || (score == o.score && left > o.left);
    }
  };
  std::priority_queue<Pair> agenda;
  auto maybe_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const absl::string_view piece(s.data() + sym[left].begin, sym[left].size + sym[right].size);
    auto it = merges_.find(piece);
    if (it != merges_.end()) agenda.push({it->second.first, left, right, piece.size()});
  };
  for (size_t i = 1; i < sym.size(); ++i) maybe_add(static_cast<int>(i) - 1, static_cast<int>(i));
  while (!agenda.empty()) {
    const Pair top = agenda.top();
    agenda.pop();
    Symbol& l = sym[top.left];
    Symbol& r = sym[top.right];
    if (l.size == 0 || r.size == 0 || l.size + r.size != top.size) continue;  // stale
    l.size += r.size;
    r.size = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = top.left;
    maybe_add(l.prev, top.left);
    maybe_add(top.left, l.next);
  }
  std::vector<int> ids;
  for (int i = sym.empty() ? -1 : 0; i >= 0; i = sym[i].next) {
    const absl::string_view piece(s.data() + sym[i].begin, sym[i].size);
    auto it = merges_.find(piece);
    if (it != merges_.end()) {
      ids.push_back(it->second.second);
    } else {
      const std::string raw = absl::StrReplaceAll(piece, {{kSpaceMark, " "}});
      for (unsigned char c : raw) ids.push_back(byte_piece_[c]);
    }
  }
  return ids;
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
  if (!sentencepiece_) {
    for (unsigned char c : text) ids.push_back(byte_piece_[c]);
    return ids;
  }
  // Merges only see valid UTF-8; invalid bytes go straight to their byte pieces, and so does a
  // literal U+2581: pieces spell a space with it, so merged it would decode to " " (found by
  // fuzzing: "\u2581" came back as " ").
  constexpr std::string_view kSpaceMark = "\xE2\x96\x81";
  size_t start = 0, i = 0;
  auto flush = [&](size_t end) {
    if (end > start) {
      std::vector<int> part = EncodeValidUtf8(text.substr(start, end - start));
      ids.insert(ids.end(), part.begin(), part.end());
    }
  };
  while (i < text.size()) {
    const size_t n = DecodeUtf8(text, i).length;
    if (n == 0) {
      flush(i);
      ids.push_back(byte_piece_[static_cast<unsigned char>(text[i])]);
      start = ++i;
    } else if (text.substr(i, n) == kSpaceMark) {
      flush(i);
      for (unsigned char c : kSpaceMark) ids.push_back(byte_piece_[c]);
      start = i += n;
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

std::string StreamDecoder::Next(int id) {
  pending_ += tokenizer_->TokenBytes(id);
  // Emit everything except a trailing, still-valid-so-far partial character.
  size_t i = 0, keep_from = pending_.size();
  while (i < pending_.size()) {
    const Utf8Char ch = DecodeUtf8(pending_, i);
    if (ch.truncated) {
      keep_from = i;
      break;
    }
    i += ch.length == 0 ? 1 : ch.length;
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
