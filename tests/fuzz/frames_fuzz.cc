// The frames server (services/common/frames.h) on outside bytes: whatever a peer sends on a
// connection, the server answers only with well-formed answer frames, closes the connection once
// the peer is done, and goes on serving others. Each input is one connection's bytes; after it,
// a well-behaved client must still get its echo.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "services/common/frames.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr char kMethod[] = "fuzz/Echo";
constexpr int kMaxFrame = 4096;  // small, so that the fuzzer reaches the limit

moe::FrameServer& Server() {
  static moe::FrameServer* server = [] {
    auto s = moe::FrameServer::Start(
        "127.0.0.1:0", kMethod,
        [](absl::string_view in, std::string* out) {
          if (in.substr(0, 4) == "fail") return absl::InvalidArgumentError("told to fail");
          *out = std::string(in);
          return absl::OkStatus();
        },
        kMaxFrame);
    FUZZ_CHECK(s.ok(), s.status().ToString());
    return s->release();
  }();
  return *server;
}

uint32_t U32(const std::string& b, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<uint32_t>(static_cast<unsigned char>(b[at + i])) << (8 * i);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moe::FrameServer& server = Server();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(server.port()));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  FUZZ_CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0, "connect");
  // The peer's bytes, then its end of the stream; the server may close early (a bad hello), so a
  // failed send is no finding.
  size_t sent = 0;
  while (sent < size) {
    const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  // Everything the server writes back, until it closes: within 5 s, or it hangs.
  std::string back;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    FUZZ_CHECK(::poll(&p, 1, 5000) == 1, "the server neither answered nor closed within 5 s");
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;  // closed (or reset: the server closed with our bytes unread)
    back.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  // Only whole answer frames, each within the limit, with a known status code.
  for (size_t at = 0; at < back.size();) {
    FUZZ_CHECK(back.size() - at >= 8, "a partial answer header");
    const uint32_t n = U32(back, at), code = U32(back, at + 4);
    FUZZ_CHECK(code <= 16, absl::StrCat("status code ", code));
    FUZZ_CHECK(n <= static_cast<uint32_t>(kMaxFrame) + 256, "an answer over the limit");
    FUZZ_CHECK(back.size() - at - 8 >= n, "a partial answer");
    at += 8 + n;
  }
  // And the server still serves a well-behaved client.
  auto c = moe::FrameConnection::Connect(absl::StrCat("127.0.0.1:", server.port()), kMethod,
                                         absl::Seconds(5), absl::Seconds(5));
  FUZZ_CHECK(c.ok(), c.status().ToString());
  FUZZ_CHECK((*c)->Send("ping").ok(), "send ping");
  for (int i = 0; i < 500; ++i) {
    pollfd p{(*c)->fd(), POLLIN, 0};
    ::poll(&p, 1, 10);
    const moe::FrameConnection::Progress got = (*c)->ReadAvailable();
    if (got == moe::FrameConnection::Progress::kMore) continue;
    FUZZ_CHECK(got == moe::FrameConnection::Progress::kAnswered, (*c)->error());
    FUZZ_CHECK((*c)->code() == 0 && (*c)->payload() == "ping", "the echo came back wrong");
    return 0;
  }
  FUZZ_CHECK(false, "no echo within 5 s after the input");
  return 0;
}
