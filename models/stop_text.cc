#include "models/stop_text.h"

#include <algorithm>

namespace moe {

StopText::Step StopText::Add(absl::string_view text) {
  Step step;
  if (stopped_) return step;
  if (stops_.empty()) {
    step.text = std::string(text);
    return step;
  }
  held_.append(text.data(), text.size());
  // Shown text never ends with the start of a stop sequence, so a match lies within held_.
  size_t first = std::string::npos;
  for (const std::string& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    step.text = held_.substr(0, first);
    step.stopped = stopped_ = true;
    held_.clear();
    return step;
  }
  // Hold back the longest tail of held_ that is a proper prefix of some stop sequence.
  size_t keep = 0;
  for (const std::string& s : stops_) {
    for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n) {
      if (absl::string_view(held_).substr(held_.size() - n) == absl::string_view(s).substr(0, n)) {
        keep = n;
        break;
      }
    }
  }
  step.text = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return step;
}

std::string StopText::Flush() {
  std::string out;
  out.swap(held_);
  return out;
}

}  // namespace moe
