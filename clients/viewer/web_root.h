// Finding and serving the web page's static files (clients/viewer/web). Pure functions except
// for the file-system checks named below; thread-safe.
#ifndef MOE_CLIENTS_VIEWER_WEB_ROOT_H_
#define MOE_CLIENTS_VIEWER_WEB_ROOT_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe::viewer {

// Where the page may be, most specific first: `flag` (--web_root), `env` ($MOE_VIEWER_WEB_ROOT),
// "clients/viewer/web" under `cwd` (running from the repository root), then relative to the
// directory of the executable: "../../../clients/viewer/web" (the build tree, build/clients/viewer)
// and "../share/moe/viewer/web" (an installed layout). Empty inputs are skipped.
std::vector<std::string> WebRootCandidates(absl::string_view flag, absl::string_view env,
                                           absl::string_view cwd, absl::string_view exe_dir);

// The first candidate that holds an index.html. An explicit --web_root or env value without one
// is an error naming it (a typo should not fall through to another copy). NotFound lists the
// places tried.
absl::StatusOr<std::string> ResolveWebRoot(absl::string_view flag, absl::string_view env,
                                           absl::string_view cwd, absl::string_view exe_dir);

// The directory of the running executable (/proc/self/exe), or "" when unknown.
std::string ExecutableDir();

// The Content-Type of a static file by its extension (".js" -> "text/javascript; charset=utf-8"),
// or nullopt for a type the page does not use: those are not served.
std::optional<std::string> ContentTypeFor(absl::string_view file_name);

// Maps a request path to a file name inside the (flat) web root: "/" -> "index.html",
// "/app.js" -> "app.js". nullopt for anything else: subdirectories, "..", hidden files, odd
// characters; those answer 404 without touching the file system.
std::optional<std::string> StaticFileName(absl::string_view path);

}  // namespace moe::viewer

#endif  // MOE_CLIENTS_VIEWER_WEB_ROOT_H_
