#include "bench/delay_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace moe::bench {
namespace {

// A one-connection echo server on a loopback port: echoes until the client ends its side, then
// closes.
class EchoServer {
 public:
  EchoServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(fd_, 4);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      const int c = ::accept(fd_, nullptr, nullptr);
      char buf[4096];
      for (ssize_t n; (n = ::read(c, buf, sizeof(buf))) > 0;) {
        for (ssize_t off = 0; off < n;) off += ::write(c, buf + off, n - off);
      }
      ::close(c);
    });
  }
  ~EchoServer() {
    thread_.join();
    ::close(fd_);
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

int Dial(const std::string& address) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port));
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

std::string ReadExactly(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, out.data() + got, n - got);
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

TEST(DelayProxyTest, ARoundTripTakesTwiceTheDelayAndBytesArriveUnchanged) {
  EchoServer echo;
  auto proxy = DelayProxy::Start(echo.address(), absl::Milliseconds(20));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  const int fd = Dial((*proxy)->address());
  const std::string ping = "ping";
  const absl::Time start = absl::Now();
  ASSERT_EQ(::write(fd, ping.data(), ping.size()), 4);
  EXPECT_EQ(ReadExactly(fd, 4), ping);
  const absl::Duration rtt = absl::Now() - start;
  EXPECT_GE(rtt, absl::Milliseconds(40));
  EXPECT_LT(rtt, absl::Milliseconds(400));  // a delay line, not a queue of sleeps
  ::close(fd);
}

TEST(DelayProxyTest, ABulkTransferIsByteExactAndNotSlowedPerChunk) {
  EchoServer echo;
  auto proxy = DelayProxy::Start(echo.address(), absl::Milliseconds(5));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  const int fd = Dial((*proxy)->address());
  std::string data(2 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 7919) >> 3);
  const absl::Time start = absl::Now();
  std::thread writer([&] {
    for (size_t off = 0; off < data.size();)
      off += ::write(fd, data.data() + off, data.size() - off);
    ::shutdown(fd, SHUT_WR);  // the end of the stream passes through too
  });
  const std::string back = ReadExactly(fd, data.size());
  writer.join();
  EXPECT_TRUE(back == data);
  // Hundreds of chunks each way: sleeping 5 ms per chunk would take seconds.
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  char extra;
  EXPECT_EQ(::read(fd, &extra, 1), 0);  // the echo server closed after our end
  ::close(fd);
}

TEST(DelayProxyTest, BadTargetOrDelayIsRefusedNamingIt) {
  auto bad = DelayProxy::Start("localhost", absl::ZeroDuration());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("target"), std::string::npos);
  auto negative = DelayProxy::Start("127.0.0.1:1", absl::Microseconds(-1));
  ASSERT_FALSE(negative.ok());
  EXPECT_NE(negative.status().message().find("delay"), std::string::npos);
}

}  // namespace
}  // namespace moe::bench
