// The frames server (services/common/frames.h) on outside bytes: whatever a peer sends on a
// connection, the server answers only with well-formed answer frames, closes the connection once
// the peer is done, and goes on serving others. Each input is one connection's bytes; after it,
// a well-behaved client must still get its echo.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
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

// A connection to the server from a loopback address of its own (127.0.0.2 to 127.0.0.251 in
// turn): at a few thousand connections a second, one source address would soon have to reuse
// ports whose last connection is still in TIME_WAIT, and a connection reusing one on loopback
// can stall; that would be the harness's finding, not the server's.
int Dial(int port) {
  static uint32_t next = 0;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  from.sin_addr.s_addr = htonl((127u << 24) | (2 + next++ % 250));
  FUZZ_CHECK(::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)) == 0, "bind");
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to));
  } while (rc != 0 && errno == EINTR);
  FUZZ_CHECK(rc == 0 || errno == EISCONN, "connect");
  return fd;
}

// Everything the server writes on `fd` until it closes it: within 5 s, or it hangs.
std::string ReadToEnd(int fd) {
  std::string back;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int ready;
    do {  // libFuzzer's watchdog alarm interrupts system calls
      ready = ::poll(&p, 1, 5000);
    } while (ready < 0 && errno == EINTR);
    FUZZ_CHECK(ready == 1, "the server neither answered nor closed within 5 s");
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return back;  // closed (or reset: the server closed with bytes unread)
    back.append(buf, static_cast<size_t>(n));
  }
}

void SendAll(int fd, const void* data, size_t size) {
  // The server may close early (a bad hello): a failed send is no finding.
  for (size_t sent = 0; sent < size;) {
    const ssize_t n = ::send(fd, static_cast<const char*>(data) + sent, size - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
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
  const int fd = Dial(server.port());
  SendAll(fd, data, size);
  ::shutdown(fd, SHUT_WR);
  const std::string back = ReadToEnd(fd);
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
  // And the server still serves a well-behaved client: a hello, "ping", and its echo.
  const int ok = Dial(server.port());
  std::string ping = std::string("MOEF\x01\x00", 6) + static_cast<char>(sizeof(kMethod) - 1) +
                     std::string(1, '\0') + kMethod + std::string("\x04\x00\x00\x00ping", 8);
  SendAll(ok, ping.data(), ping.size());
  ::shutdown(ok, SHUT_WR);
  const std::string echo = ReadToEnd(ok);
  ::close(ok);
  FUZZ_CHECK(echo == std::string("\x04\x00\x00\x00\x00\x00\x00\x00ping", 12),
             "the echo came back wrong or not at all");
  return 0;
}
