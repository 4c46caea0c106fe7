// --help for every binary of the project: absl prints only the flags defined in a file named
// after the program, and ours live in main.cc and in shared flag files, so a plain --help said
// "No flags matched". InitUsage makes --help (and --helpshort) list every flag the project
// defines in the binary, with its help text, after `usage` (which names the subcommands).
// Call first in main, before parsing flags. Torch-free.
#ifndef MOE_MODELS_USAGE_H_
#define MOE_MODELS_USAGE_H_

#include "absl/strings/string_view.h"

namespace moe {

void InitUsage(absl::string_view usage);

// Whether a flag defined in `file` is the project's (not Abseil's or a library's own).
bool IsProjectFlagFile(absl::string_view file);

}  // namespace moe

#endif  // MOE_MODELS_USAGE_H_
