#include "services/common/frame_service.h"

#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "services/common/host_port.h"

ABSL_FLAG(std::string, frames_listen, "",
          "HOST:PORT of the frames listener (Route/Forward messages as raw TCP frames beside "
          "gRPC); empty = the --listen host, any free port; \"off\" = no frames. Off with TLS");
ABSL_FLAG(std::string, frames_advertise, "",
          "HOST:PORT or :PORT that callers dial for frames (a proxy, a published port); empty = "
          "the host they reached this service at, with the listener's port");

namespace moe {

absl::StatusOr<ServiceFrames> StartServiceFrames(const CommonFlags& flags,
                                                 const std::string& method,
                                                 FrameServer::Handler handler) {
  ServiceFrames out;
  std::string listen = absl::GetFlag(FLAGS_frames_listen);
  const std::string advertise = absl::GetFlag(FLAGS_frames_advertise);
  if (listen == "off") {
    out.why_off = "--frames_listen=off";
    return out;
  }
  if (flags.tls.enabled()) {
    out.why_off = "TLS is on (frames are plaintext)";
    return out;
  }
  if (listen.empty()) {
    absl::StatusOr<HostPort> grpc_listen = ParseHostPort(flags.listen, "--listen");
    if (!grpc_listen.ok()) return grpc_listen.status();
    listen = absl::StrCat(grpc_listen->host, ":0");
  } else if (absl::StatusOr<HostPort> hp = ParseHostPort(listen, "--frames_listen"); !hp.ok()) {
    return hp.status();
  }
  if (!advertise.empty()) {
    absl::StatusOr<HostPort> hp = ParseHostPort(advertise, "--frames_advertise");
    if (!hp.ok()) return hp.status();
    if (hp->port == 0) {
      return absl::InvalidArgumentError("--frames_advertise: want a port in [1, 65535]");
    }
  }
  absl::StatusOr<std::unique_ptr<FrameServer>> server =
      FrameServer::Start(listen, method, std::move(handler));
  if (!server.ok()) {
    return absl::Status(server.status().code(),
                        absl::StrCat("--frames_listen=", listen, ": ", server.status().message()));
  }
  out.server = *std::move(server);
  out.endpoint.set_address(advertise.empty() ? absl::StrCat(":", out.server->port()) : advertise);
  out.endpoint.set_method(method);
  return out;
}

}  // namespace moe
