#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "clients/moectl/embedded.h"

namespace moe::cli {

absl::Status ExecEmbedded(char** argv) {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("--embedded: cannot find moectl's own folder: ", ec.message()));
  }
  std::string path = (self.parent_path() / kEmbeddedProgram).string();
  argv[0] = path.data();
  execv(path.c_str(), argv);
  return absl::FailedPreconditionError(
      absl::StrCat("--embedded: cannot run ", path,
                   " (installed beside moectl; it holds the model): ", std::strerror(errno)));
}

}  // namespace moe::cli
