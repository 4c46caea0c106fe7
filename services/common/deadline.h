// Deadlines of outgoing calls, said one way: as an absl::Time, or as a timeout from now. Every
// outgoing call of the project sets one of these; nothing converts to std::chrono by hand.
#ifndef MOE_SERVICES_COMMON_DEADLINE_H_
#define MOE_SERVICES_COMMON_DEADLINE_H_

#include <grpcpp/client_context.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace moe {

inline void SetDeadline(grpc::ClientContext& ctx, absl::Time deadline) {
  ctx.set_deadline(absl::ToChronoTime(deadline));
}

inline void SetTimeout(grpc::ClientContext& ctx, absl::Duration timeout) {
  SetDeadline(ctx, absl::Now() + timeout);
}

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_DEADLINE_H_
