#include "models/usage.h"

#include <string>

#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace moe {
namespace {

constexpr absl::string_view kProjectDirs[] = {"services/", "clients/", "models/", "bench/"};

// Where the project's part of a path starts, or npos.
size_t ProjectStart(absl::string_view file) {
  if (absl::StrContains(file, "absl/")) return absl::string_view::npos;
  for (absl::string_view dir : kProjectDirs) {
    if (absl::StartsWith(file, dir)) return 0;
    const size_t at = file.find(absl::StrCat("/", dir));
    if (at != absl::string_view::npos) return at + 1;
  }
  return absl::string_view::npos;
}

// "services/router/main.cc", whatever directory the build ran in.
std::string ProjectPath(absl::string_view file) {
  const size_t start = ProjectStart(file);
  return std::string(start == absl::string_view::npos ? file : file.substr(start));
}

}  // namespace

bool IsProjectFlagFile(absl::string_view file) {
  return ProjectStart(file) != absl::string_view::npos;
}

void InitUsage(absl::string_view usage) {
  absl::SetProgramUsageMessage(usage);
  absl::FlagsUsageConfig config;
  config.contains_helpshort_flags = IsProjectFlagFile;
  config.contains_help_flags = IsProjectFlagFile;
  config.normalize_filename = ProjectPath;
  absl::SetFlagsUsageConfig(config);
}

}  // namespace moe
