// HOST:PORT addresses, as every service and client takes them in flags, cluster files and
// RegisterPool. HOST is a name, an IPv4 literal, a bracketed IPv6 literal, or (listen addresses
// only) empty for every interface.
#ifndef MOE_SERVICES_COMMON_HOST_PORT_H_
#define MOE_SERVICES_COMMON_HOST_PORT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe {

struct HostPort {
  std::string host;  // as written, brackets included; may be empty
  int port = 0;      // [0, 65535]; 0 asks for any free port when listening
};

// Splits and checks the syntax. Every error starts with `field` ("--listen: ...").
absl::StatusOr<HostPort> ParseHostPort(absl::string_view address, absl::string_view field);

// True for a host that means "every interface": empty, 0.0.0.0, or any spelling of the IPv6
// unspecified address ([::], [::0], [0:0::0], ...). A server listens there; nobody can dial it.
bool IsWildcardHost(absl::string_view host);

// True for a host that only this machine can reach: localhost, 127.0.0.0/8, [::1] and
// [::ffff:127.x.y.z]. A process on another host that dials it reaches itself.
bool IsLoopbackHost(absl::string_view host);

// An address another process can dial: HOST:PORT with a concrete host and a port in [1, 65535].
absl::Status CheckDialable(absl::string_view address, absl::string_view field);

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_HOST_PORT_H_
