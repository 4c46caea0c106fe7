// UTF-8, decoded and encoded one way for the whole tree: the tokenizer's stream decoder and
// sanitizer, and the viewer's width counting. Strict: overlong forms, surrogates and code points
// above U+10FFFF are invalid. Pure functions; thread-safe; no dependencies.
#ifndef MOE_MODELS_UTF8_H_
#define MOE_MODELS_UTF8_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace moe {

struct Utf8Char {
  char32_t code_point = 0;
  size_t length = 0;       // bytes of the valid sequence; 0 = no valid sequence starts here
  bool truncated = false;  // length 0 because the text ends inside a sequence that was valid so far
};

// The sequence at text[pos]. REQUIRES: pos < text.size().
Utf8Char DecodeUtf8(std::string_view text, size_t pos);

// Appends the encoding of `c`. REQUIRES: c <= U+10FFFF.
void AppendUtf8(char32_t c, std::string* out);

// Valid sequences copied, each invalid byte replaced by U+FFFD.
std::string SanitizeUtf8(std::string_view bytes);

}  // namespace moe

#endif  // MOE_MODELS_UTF8_H_
