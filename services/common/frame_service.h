// The frames side door of a service (frames.h) as the router and the pools start it: the
// --frames_listen and --frames_advertise flags, the listener, and the FrameEndpoint answer that
// GetFrameEndpoint gives callers.
#ifndef MOE_SERVICES_COMMON_FRAME_SERVICE_H_
#define MOE_SERVICES_COMMON_FRAME_SERVICE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "moe/v1/frames.pb.h"
#include "services/common/flags.h"
#include "services/common/frames.h"

namespace moe {

struct ServiceFrames {
  std::unique_ptr<FrameServer> server;  // null: frames are off
  moe::v1::FrameEndpoint endpoint;      // what GetFrameEndpoint answers (empty address: off)
  std::string why_off;                  // when off: why, for the log
};

// Starts frames for `method` unless --frames_listen=off or TLS is on (frames are plaintext).
// The listener takes the --listen host unless --frames_listen names one; errors name the flag.
absl::StatusOr<ServiceFrames> StartServiceFrames(const CommonFlags& flags,
                                                 const std::string& method,
                                                 FrameServer::Handler handler);

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_FRAME_SERVICE_H_
