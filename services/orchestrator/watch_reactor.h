// The wire side of WatchRouting: subscribes to the event hub and writes what it queues for the
// subscriber, as batches of pre-serialized events (see event_hub.h), one message in flight at a
// time, so a slow reader only ever holds its bounded hub queue. Served raw (grpc::ByteBuffer) so
// that each event is serialized once for all subscribers; on the wire it is the declared
// moe.v1 method.
#ifndef MOE_SERVICES_ORCHESTRATOR_WATCH_REACTOR_H_
#define MOE_SERVICES_ORCHESTRATOR_WATCH_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include "services/orchestrator/event_hub.h"

namespace moe {

// `raw` must parse as a moe.v1.WatchRoutingRequest (INVALID_ARGUMENT otherwise); the hub
// validates the filters. The stream ends when the client cancels or the server shuts down.
grpc::ServerWriteReactor<grpc::ByteBuffer>* StartWatch(EventHub* hub, const grpc::ByteBuffer& raw);

}  // namespace moe

#endif  // MOE_SERVICES_ORCHESTRATOR_WATCH_REACTOR_H_
