// Flags every service takes (--listen, --metrics_listen, --model, --random_init, --init_seed,
// --cluster, --threads), read once into a plain struct so libraries never see flags.
#ifndef MOE_SERVICES_COMMON_FLAGS_H_
#define MOE_SERVICES_COMMON_FLAGS_H_

#include <string>

#include "models/config.h"

namespace moe {

struct CommonFlags {
  std::string listen;
  std::string metrics_listen;
  ModelSource model;
  std::string cluster;
  int threads = 1;
};

CommonFlags ReadCommonFlags();

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_FLAGS_H_
