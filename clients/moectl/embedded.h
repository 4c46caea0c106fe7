// `moectl generate --embedded`: the model run in-process, no cluster. LibTorch's shared libraries
// take about a second of CPU to load and initialise, which every moectl command paid while moectl
// linked them, though only --embedded runs the model. So moectl does not link them: for
// --embedded it runs `moectl-embedded`, installed beside it, with the same arguments. That
// program is moectl built with the model in (MOECTL_IN_PROCESS_MODEL), and it generates.
#ifndef MOE_CLIENTS_MOECTL_EMBEDDED_H_
#define MOE_CLIENTS_MOECTL_EMBEDDED_H_

#include "absl/status/status.h"
#include "clients/moectl/generation.h"
#include "models/config.h"

namespace moe::cli {

// The program moectl runs for --embedded, looked for in the folder of moectl's own executable.
inline constexpr char kEmbeddedProgram[] = "moectl-embedded";

// Generates with the model loaded in this process (embedded_generate.cc, linked into
// moectl-embedded and moectl's tests), printing as a remote generation does.
absl::Status GenerateEmbedded(const ModelSource& source, const GenerateArgs& args, int threads,
                              Printer& printer);

// Replaces this process with moectl-embedded from moectl's folder, given `argv` (moectl's own
// arguments, argv[0] included and replaced). Returns only on failure, with an error that names
// the program and why it could not run.
absl::Status ExecEmbedded(char** argv);

}  // namespace moe::cli

#endif  // MOE_CLIENTS_MOECTL_EMBEDDED_H_
