// The wire side of Generate (server streaming) and Complete (unary): reactors that start a
// request through Generations and move its messages to the client; a client's cancellation
// cancels the request in the engine. Each function returns the reactor for gRPC to drive.
#ifndef MOE_SERVICES_ORCHESTRATOR_GENERATE_REACTORS_H_
#define MOE_SERVICES_ORCHESTRATOR_GENERATE_REACTORS_H_

#include <grpcpp/grpcpp.h>

#include "moe/v1/orchestrator.pb.h"
#include "services/orchestrator/generations.h"

namespace moe {

// One message per token (prompt tokens too with echo_prompt); ends with the request's status.
grpc::ServerWriteReactor<moe::v1::GenerateResponse>* StartGenerateStream(
    Generations& generations, const moe::v1::GenerateRequest& req);

// The whole text in one response once the request is over.
grpc::ServerUnaryReactor* StartComplete(Generations& generations,
                                        const moe::v1::GenerateRequest& req,
                                        moe::v1::CompleteResponse* resp);

}  // namespace moe

#endif  // MOE_SERVICES_ORCHESTRATOR_GENERATE_REACTORS_H_
