// Loads `moectl generate --embedded`'s implementation on demand. LibTorch's shared libraries take
// about a second of CPU to load and initialise, which every moectl command paid when moectl
// linked them, though only --embedded runs the model. So the model lives in a module,
// moectl-embedded.so, installed beside moectl and loaded the first time --embedded asks for it.
#ifndef MOE_CLIENTS_MOECTL_EMBEDDED_LOADER_H_
#define MOE_CLIENTS_MOECTL_EMBEDDED_LOADER_H_

#include <string>

#include "absl/status/statusor.h"
#include "clients/moectl/generation.h"
#include "models/config.h"

namespace moe::cli {

// Generates with the model loaded in this process (embedded_generate.cc, linked into the module
// and into moectl's tests), printing as a remote generation does.
absl::Status GenerateEmbedded(const ModelSource& source, const GenerateArgs& args, int threads,
                              Printer& printer);

// GenerateEmbedded's type; the module's C entry point `moectl_embedded_generate` returns it.
using GenerateEmbeddedFn = absl::Status (*)(const ModelSource& source, const GenerateArgs& args,
                                            int threads, Printer& printer);

// The module's file name, and where moectl looks for it: the folder of moectl's own executable.
inline constexpr char kEmbeddedModule[] = "moectl-embedded.so";

// GenerateEmbedded from `dir`/moectl-embedded.so, or from the running executable's folder when
// `dir` is empty. The module stays loaded for the life of the process. Errors name the file and
// what the loader said (a missing file, a missing library of its own, a wrong entry point).
absl::StatusOr<GenerateEmbeddedFn> LoadEmbedded(const std::string& dir = "");

}  // namespace moe::cli

#endif  // MOE_CLIENTS_MOECTL_EMBEDDED_LOADER_H_
