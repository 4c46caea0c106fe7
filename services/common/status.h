// The service edge: absl::Status <-> grpc::Status, the one place the two meet, and the one way a
// unary callback handler finishes. Handlers compute an absl::Status; only this file makes a
// grpc::Status of it.
#ifndef MOE_SERVICES_COMMON_STATUS_H_
#define MOE_SERVICES_COMMON_STATUS_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/callback_common.h>
#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace moe {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);
// "INVALID_ARGUMENT", "OK", ...: for metric labels.
const char* GrpcCodeName(grpc::StatusCode code);

// Finishes a unary callback method with `status` on gRPC's default reactor: for handlers that
// answer inline, `return FinishUnary(ctx, DoThing(req, resp));`.
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* ctx, const absl::Status& status);

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_STATUS_H_
