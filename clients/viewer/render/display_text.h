// Text helpers for putting model tokens on a screen: tokens may hold control characters, partial
// UTF-8 (byte-fallback pieces) and wide characters, and layouts count columns, not bytes.
// Pure functions; thread-safe.
#ifndef MOE_CLIENTS_VIEWER_RENDER_DISPLAY_TEXT_H_
#define MOE_CLIENTS_VIEWER_RENDER_DISPLAY_TEXT_H_

#include <string>

#include "absl/strings/string_view.h"

namespace moe::viewer {

// `text` as valid UTF-8 that prints on one line: invalid bytes become U+FFFD, '\n' "↵", '\t' "→",
// '\r' "␍", other C0/C1 controls and DEL "·". Cairo refuses invalid UTF-8 and a raw newline would
// break a terminal layout, so every token goes through this before it is drawn.
std::string SanitizeForDisplay(absl::string_view text);

// Terminal columns `text` occupies: ANSI CSI escapes ("\x1b[...m") and controls take none,
// combining marks and zero-width characters none, East Asian wide characters and emoji two,
// everything else one (an invalid UTF-8 byte counts as one, as its U+FFFD replacement would).
int DisplayWidth(absl::string_view text);

// The longest prefix of `text` that fits in `width` columns, cut at code point boundaries; when
// anything was cut the last column holds "…". Escapes in the kept prefix are kept; a caller that
// colours text appends its own reset.
std::string TruncateToWidth(absl::string_view text, int width);

// TruncateToWidth, then spaces up to exactly `width` columns.
std::string PadToWidth(absl::string_view text, int width);

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_RENDER_DISPLAY_TEXT_H_
