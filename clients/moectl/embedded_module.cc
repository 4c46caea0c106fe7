// The entry point of moectl-embedded.so, the module moectl loads for --embedded
// (embedded_loader.h): GenerateEmbedded, by a C name that dlsym finds.
#include "clients/moectl/embedded_loader.h"

extern "C" moe::cli::GenerateEmbeddedFn moectl_embedded_generate() {
  return &moe::cli::GenerateEmbedded;
}
