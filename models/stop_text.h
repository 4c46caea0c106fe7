// Stop sequences over generated text: what of the text may be shown now, and where it ends. Text
// that could still turn out to begin a stop sequence is held back until the next token decides,
// so that a stream never shows part of a stop sequence (OpenAI's and vLLM's behaviour). Torch-free.
//
// Not thread-safe; one per generated sequence.
#ifndef MOE_MODELS_STOP_TEXT_H_
#define MOE_MODELS_STOP_TEXT_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace moe {

class StopText {
 public:
  // REQUIRES: no stop sequence is empty. No stop sequences: every text passes through unchanged.
  explicit StopText(std::vector<std::string> stops = {}) : stops_(std::move(stops)) {}

  struct Step {
    std::string text;      // may be shown now
    bool stopped = false;  // a stop sequence appeared; `text` ends right before it
  };
  // Adds the next piece of generated text. After a step that stopped, returns nothing more.
  Step Add(absl::string_view text);
  // At the end of generation (without a stop): the text still held back.
  std::string Flush();

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace moe

#endif  // MOE_MODELS_STOP_TEXT_H_
