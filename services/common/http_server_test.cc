#include "services/common/http_server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace moe {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

int Dial(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

void SendText(int fd, const std::string& s) {
  ASSERT_EQ(send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
}

// Reads until `until` appears (or the peer closes / 5 s pass); returns everything read.
std::string ReadUntil(int fd, const std::string& until) {
  std::string out;
  while (out.find(until) == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) break;
    char buf[4096];
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, n);
  }
  return out;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpServerOptions options = {}) {
    absl::StatusOr<std::unique_ptr<HttpServer>> s = HttpServer::Start(
        "127.0.0.1:0", "--test_listen", options,
        [this](const HttpRequest& req, HttpResponse& resp) { Handle(req, resp); });
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }
  void Handle(const HttpRequest& req, HttpResponse& resp) {
    if (req.path == "/echo") {
      const std::string* type = req.Header("content-type");
      resp.Send(200, "text/plain",
                absl::StrCat(req.method, " ", req.query, " ", type ? *type : "-", " ", req.body));
    } else if (req.path == "/stream") {
      resp.StartStream(200, "text/event-stream");
      resp.Write("data: one\n\n");
      stream_wrote_.Notify();
      release_.WaitForNotification();
      resp.Write("data: two\n\n");
    } else if (req.path == "/wait") {
      waiting_.Notify();
      while (!resp.ClientGone()) usleep(10000);
      saw_gone_.Notify();
    } else {
      resp.Send(404, "text/plain", "no\n");
    }
  }
  std::unique_ptr<HttpServer> server_;
  absl::Notification stream_wrote_, release_, waiting_, saw_gone_;
};

TEST_F(HttpServerTest, KeepAliveServesRequestsInTurnWithTheirBodies) {
  StartServer();
  const int fd = Dial(server_->port());
  SendText(fd,
           "POST /echo?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
           "Content-Length: 5\r\n\r\nhello");
  std::string a = ReadUntil(fd, "hello");
  EXPECT_THAT(a, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(a, HasSubstr("Connection: keep-alive"));
  EXPECT_THAT(a, HasSubstr("POST x=1 application/json hello"));
  SendText(fd, "GET /missing HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_THAT(ReadUntil(fd, "no\n"), StartsWith("HTTP/1.1 404 Not Found\r\n"));
  close(fd);
}

TEST_F(HttpServerTest, OversizedBodyIsRefusedBeforeItIsSent) {
  HttpServerOptions options;
  options.max_body_bytes = 100;
  options.error_body = [](int status, absl::string_view message) {
    return std::make_pair(std::string("application/json"),
                          absl::StrCat("{\"status\":", status, ",\"m\":\"", message, "\"}"));
  };
  StartServer(options);
  const int fd = Dial(server_->port());
  // Only the head is sent: the answer must come without the body.
  SendText(fd, "POST /echo HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n");
  const std::string r = ReadUntil(fd, "}");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 413 Payload Too Large\r\n"));
  EXPECT_THAT(r, HasSubstr("application/json"));
  EXPECT_THAT(r, HasSubstr("request body: 1000000 bytes, at most 100"));
  close(fd);
}

TEST_F(HttpServerTest, ExpectContinueGetsOneBeforeTheBody) {
  StartServer();
  const int fd = Dial(server_->port());
  SendText(fd, "POST /echo HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_THAT(ReadUntil(fd, "\r\n\r\n"), StartsWith("HTTP/1.1 100 Continue\r\n"));
  SendText(fd, "abc");
  EXPECT_THAT(ReadUntil(fd, "abc"), HasSubstr("200 OK"));
  close(fd);
}

TEST_F(HttpServerTest, MalformedRequestsGet400) {
  StartServer();
  for (const char* bad : {"NONSENSE\r\n\r\n", "GET / HTTP/1.1\r\nno colon\r\n\r\n",
                          "POST /echo HTTP/1.1\r\nContent-Length: x\r\n\r\n"}) {
    const int fd = Dial(server_->port());
    SendText(fd, bad);
    EXPECT_THAT(ReadUntil(fd, "\n\n"), StartsWith("HTTP/1.1 400 Bad Request")) << bad;
    close(fd);
  }
}

TEST_F(HttpServerTest, StreamedChunksLeaveAsTheyAreWritten) {
  StartServer();
  const int fd = Dial(server_->port());
  SendText(fd, "GET /stream HTTP/1.1\r\n\r\n");
  stream_wrote_.WaitForNotification();
  // The first event arrives while the handler still holds the second back.
  const std::string first = ReadUntil(fd, "data: one\n\n");
  EXPECT_THAT(first, HasSubstr("Transfer-Encoding: chunked"));
  EXPECT_THAT(first, HasSubstr("b\r\ndata: one\n\n\r\n"));
  release_.Notify();
  EXPECT_THAT(ReadUntil(fd, "0\r\n\r\n"), HasSubstr("data: two\n\n\r\n0\r\n\r\n"));
  close(fd);
}

TEST_F(HttpServerTest, HandlerSeesTheClientLeave) {
  StartServer();
  const int fd = Dial(server_->port());
  SendText(fd, "GET /wait HTTP/1.1\r\n\r\n");
  waiting_.WaitForNotification();
  close(fd);
  EXPECT_TRUE(saw_gone_.WaitForNotificationWithTimeout(absl::Seconds(5)));
}

TEST_F(HttpServerTest, ConnectionsBeyondTheLimitGet503) {
  HttpServerOptions options;
  options.max_connections = 1;
  StartServer(options);
  const int a = Dial(server_->port());
  SendText(a, "GET /wait HTTP/1.1\r\n\r\n");
  waiting_.WaitForNotification();
  const int b = Dial(server_->port());
  EXPECT_THAT(ReadUntil(b, "later"), StartsWith("HTTP/1.1 503 Service Unavailable"));
  close(b);
  close(a);
}

TEST_F(HttpServerTest, BadListenAddressNamesTheFlag) {
  absl::StatusOr<std::unique_ptr<HttpServer>> s =
      HttpServer::Start("nonsense", "--http_listen", {}, nullptr);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("--http_listen"));
}

}  // namespace
}  // namespace moe
