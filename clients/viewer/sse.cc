#include "clients/viewer/sse.h"

#include "absl/strings/str_cat.h"

namespace moe::viewer {
namespace {

std::string OneLine(absl::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

}  // namespace

std::string SseEvent(absl::string_view event, absl::string_view data) {
  std::string out = absl::StrCat("event: ", OneLine(event), "\ndata: ");
  out.reserve(out.size() + data.size() + 8);
  for (size_t i = 0; i < data.size(); ++i) {
    const char c = data[i];
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < data.size() && data[i + 1] == '\n') ++i;  // "\r\n" is one break
      out += "\ndata: ";
    } else {
      out += c;
    }
  }
  out += "\n\n";
  return out;
}

std::string SseComment(absl::string_view text) { return absl::StrCat(": ", OneLine(text), "\n\n"); }

std::string SseRetry(int milliseconds) { return absl::StrCat("retry: ", milliseconds, "\n\n"); }

}  // namespace moe::viewer
