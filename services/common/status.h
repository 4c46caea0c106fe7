// absl::Status <-> grpc::Status: the one place the two meet (the service edge and clients).
#ifndef MOE_SERVICES_COMMON_STATUS_H_
#define MOE_SERVICES_COMMON_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace moe {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);
// "INVALID_ARGUMENT", "OK", ...: for metric labels.
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_STATUS_H_
