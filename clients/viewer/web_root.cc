#include "clients/viewer/web_root.h"

#include <unistd.h>

#include <climits>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace moe::viewer {
namespace {

bool HasIndex(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::is_regular_file(std::filesystem::path(dir) / "index.html", ec);
}

std::string Join(absl::string_view dir, absl::string_view rest) {
  return (std::filesystem::path(std::string(dir)) / std::string(rest)).lexically_normal().string();
}

}  // namespace

std::vector<std::string> WebRootCandidates(absl::string_view flag, absl::string_view env,
                                           absl::string_view cwd, absl::string_view exe_dir) {
  std::vector<std::string> out;
  if (!flag.empty()) out.emplace_back(flag);
  if (!env.empty()) out.emplace_back(env);
  if (!cwd.empty()) out.push_back(Join(cwd, "clients/viewer/web"));
  if (!exe_dir.empty()) {
    out.push_back(Join(exe_dir, "../../../clients/viewer/web"));
    out.push_back(Join(exe_dir, "../share/moe/viewer/web"));
  }
  return out;
}

absl::StatusOr<std::string> ResolveWebRoot(absl::string_view flag, absl::string_view env,
                                           absl::string_view cwd, absl::string_view exe_dir) {
  if (!flag.empty() && !HasIndex(std::string(flag))) {
    return absl::NotFoundError(absl::StrCat("--web_root: ", flag, " has no index.html"));
  }
  if (flag.empty() && !env.empty() && !HasIndex(std::string(env))) {
    return absl::NotFoundError(absl::StrCat("MOE_VIEWER_WEB_ROOT: ", env, " has no index.html"));
  }
  const std::vector<std::string> candidates = WebRootCandidates(flag, env, cwd, exe_dir);
  for (const std::string& dir : candidates) {
    if (HasIndex(dir)) return dir;
  }
  return absl::NotFoundError(absl::StrCat(
      "--web_root: the web page (index.html) is in none of: ", absl::StrJoin(candidates, ", "),
      "; pass --web_root=DIR or set MOE_VIEWER_WEB_ROOT"));
}

std::string ExecutableDir() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  return std::filesystem::path(std::string(buf, n)).parent_path().string();
}

std::optional<std::string> ContentTypeFor(absl::string_view file_name) {
  const size_t dot = file_name.rfind('.');
  if (dot == absl::string_view::npos) return std::nullopt;
  const std::string ext = absl::AsciiStrToLower(file_name.substr(dot + 1));
  // Module scripts need a JavaScript type, or browsers refuse to run them.
  if (ext == "js" || ext == "mjs") return "text/javascript; charset=utf-8";
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "html") return "text/html; charset=utf-8";
  if (ext == "json" || ext == "map") return "application/json";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "png") return "image/png";
  if (ext == "ico") return "image/x-icon";
  return std::nullopt;
}

std::optional<std::string> StaticFileName(absl::string_view path) {
  if (path == "/" || path == "/index.html") return "index.html";
  if (path.size() < 2 || path[0] != '/' || path[1] == '.') return std::nullopt;
  absl::string_view name = path.substr(1);
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return std::nullopt;  // '/', '%', '\\', ... : the web root is flat
    }
  }
  if (!ContentTypeFor(name).has_value()) return std::nullopt;
  return std::string(name);
}

}  // namespace moe::viewer
