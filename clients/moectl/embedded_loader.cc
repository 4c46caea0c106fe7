#include "clients/moectl/embedded_loader.h"

#include <dlfcn.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace moe::cli {

absl::StatusOr<GenerateEmbeddedFn> LoadEmbedded(const std::string& dir) {
  std::filesystem::path folder = dir;
  if (folder.empty()) {
    std::error_code ec;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("--embedded: cannot find moectl's own folder: ", ec.message()));
    }
    folder = self.parent_path();
  }
  const std::string path = (folder / kEmbeddedModule).string();
  // RTLD_LOCAL: the module's copies of the project's code stay its own.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    return absl::FailedPreconditionError(absl::StrCat(
        "--embedded: cannot load ", path, " (installed beside moectl; it holds the model code): ",
        why != nullptr ? why : "unknown error"));
  }
  using Entry = GenerateEmbeddedFn (*)();
  auto entry = reinterpret_cast<Entry>(dlsym(handle, "moectl_embedded_generate"));
  if (entry == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("--embedded: ", path, " has no moectl_embedded_generate entry point"));
  }
  return entry();
}

}  // namespace moe::cli
