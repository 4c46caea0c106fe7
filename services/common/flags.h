// Flags every service takes (--listen, --metrics_listen, --model, --random_init, --init_seed,
// --cluster, --threads, and tls.h's --tls_cert, --tls_key, --tls_ca), read once into a plain
// struct so libraries never see flags.
#ifndef MOE_SERVICES_COMMON_FLAGS_H_
#define MOE_SERVICES_COMMON_FLAGS_H_

#include <string>

#include "absl/status/statusor.h"
#include "models/config.h"
#include "services/common/server.h"
#include "services/common/tls.h"

namespace moe {

struct CommonFlags {
  std::string listen;
  std::string metrics_listen;
  ModelSource model;
  std::string cluster;
  int threads = 1;
  TlsConfig tls;  // plaintext unless the --tls_* flags are given
};

// The only error: a bad --tls_* set (named).
absl::StatusOr<CommonFlags> ReadCommonFlags();

// The server options of `service` with the listen addresses and credentials of `flags`.
ServerOptions ServerOptionsFor(const std::string& service, const CommonFlags& flags);

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_FLAGS_H_
