#include "services/common/frames.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "moe/v1/frames.pb.h"
#include "services/common/frame_call.h"

namespace moe {
namespace {

using ::testing::HasSubstr;

constexpr char kMethod[] = "test/Upper";

// Answers the request upper-cased; "fail" gets INVALID_ARGUMENT.
absl::Status Upper(absl::string_view in, std::string* out) {
  if (in == "fail") return absl::InvalidArgumentError("request: told to fail");
  *out = absl::AsciiStrToUpper(in);
  return absl::OkStatus();
}

std::unique_ptr<FrameServer> StartOrDie(FrameServer::Handler handler = Upper,
                                        int max_bytes = kDefaultMaxFrameBytes) {
  absl::StatusOr<std::unique_ptr<FrameServer>> s =
      FrameServer::Start("127.0.0.1:0", kMethod, std::move(handler), max_bytes);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : nullptr;
}

std::string Address(const FrameServer& s) { return absl::StrCat("127.0.0.1:", s.port()); }

std::unique_ptr<FrameConnection> ConnectOrDie(const FrameServer& s,
                                              absl::string_view method = kMethod) {
  absl::StatusOr<std::unique_ptr<FrameConnection>> c =
      FrameConnection::Connect(Address(s), method, absl::Seconds(5), absl::Seconds(5));
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

// Polls until the answer is in or the connection breaks (bounded: 10 s).
FrameConnection::Progress Await(FrameConnection& c) {
  for (int i = 0; i < 1000; ++i) {
    pollfd p{c.fd(), POLLIN, 0};
    ::poll(&p, 1, 10);
    const FrameConnection::Progress got = c.ReadAvailable();
    if (got != FrameConnection::Progress::kMore) return got;
  }
  return FrameConnection::Progress::kMore;
}

TEST(FramesTest, AnswersInOrderOnOneConnection) {
  auto server = StartOrDie();
  auto c = ConnectOrDie(*server);
  for (const std::string& word :
       std::vector<std::string>{"alpha", "beta", std::string(300000, 'x'), ""}) {
    ASSERT_TRUE(c->Send(word).ok());
    ASSERT_EQ(Await(*c), FrameConnection::Progress::kAnswered) << c->error();
    EXPECT_EQ(c->code(), 0);
    EXPECT_EQ(c->payload(), absl::AsciiStrToUpper(word));
  }
  EXPECT_EQ(server->open_connections(), 1);
}

TEST(FramesTest, AnErrorAnswerKeepsTheConnection) {
  auto server = StartOrDie();
  auto c = ConnectOrDie(*server);
  ASSERT_TRUE(c->Send("fail").ok());
  ASSERT_EQ(Await(*c), FrameConnection::Progress::kAnswered);
  EXPECT_EQ(c->code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(c->payload(), "request: told to fail");
  ASSERT_TRUE(c->Send("ok").ok());
  ASSERT_EQ(Await(*c), FrameConnection::Progress::kAnswered);
  EXPECT_EQ(c->payload(), "OK");
}

TEST(FramesTest, AnotherMethodIsRefusedByName) {
  auto server = StartOrDie();
  auto c = ConnectOrDie(*server, "test/Other");
  ASSERT_TRUE(c->Send("hello").ok());
  ASSERT_EQ(Await(*c), FrameConnection::Progress::kAnswered);
  EXPECT_EQ(c->code(), 12);  // UNIMPLEMENTED
  EXPECT_THAT(c->payload(), HasSubstr("test/Upper"));
  EXPECT_THAT(c->payload(), HasSubstr("test/Other"));
  EXPECT_EQ(Await(*c), FrameConnection::Progress::kBroken);  // then closed
}

TEST(FramesTest, ARequestOverTheLimitIsRefusedAndTheServerGoesOn) {
  auto server = StartOrDie(Upper, /*max_bytes=*/1000);
  auto c = ConnectOrDie(*server);
  ASSERT_TRUE(c->Send(std::string(1001, 'a')).ok());
  ASSERT_EQ(Await(*c), FrameConnection::Progress::kAnswered);
  EXPECT_EQ(c->code(), static_cast<int>(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(c->payload(), HasSubstr("1001"));
  auto d = ConnectOrDie(*server);
  ASSERT_TRUE(d->Send(std::string(1000, 'a')).ok());
  ASSERT_EQ(Await(*d), FrameConnection::Progress::kAnswered);
  EXPECT_EQ(d->payload(), std::string(1000, 'A'));
}

TEST(FramesTest, GarbageInsteadOfAHelloClosesOnlyThatConnection) {
  auto server = StartOrDie();
  // An HTTP client at the frames port: its request line is no hello.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(server->port()));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);
  const std::string http = "GET / HTTP/1.1\r\n\r\n";
  ASSERT_EQ(::send(fd, http.data(), http.size(), MSG_NOSIGNAL), static_cast<ssize_t>(http.size()));
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1);
  char byte;
  // Closed with nothing written back: end of stream, or a reset (the request line was unread).
  EXPECT_LE(::recv(fd, &byte, 1, 0), 0);
  ::close(fd);
  auto good = ConnectOrDie(*server);
  ASSERT_TRUE(good->Send("still here").ok());
  ASSERT_EQ(Await(*good), FrameConnection::Progress::kAnswered);
  EXPECT_EQ(good->payload(), "STILL HERE");
}

TEST(FramesTest, CloseAnswersTheMessageUnderWayThenEndsTheConnection) {
  absl::Notification entered, release;
  auto server = StartOrDie([&](absl::string_view in, std::string* out) {
    entered.Notify();
    release.WaitForNotification();
    return Upper(in, out);
  });
  auto c = ConnectOrDie(*server);
  ASSERT_TRUE(c->Send("busy").ok());
  entered.WaitForNotification();
  server->Close();
  release.Notify();
  ASSERT_EQ(Await(*c), FrameConnection::Progress::kAnswered);
  EXPECT_EQ(c->payload(), "BUSY");
  EXPECT_EQ(Await(*c), FrameConnection::Progress::kBroken);
  EXPECT_FALSE(
      FrameConnection::Connect(Address(*server), kMethod, absl::Seconds(1), absl::Seconds(1)).ok());
}

TEST(FramesTest, ConnectingWhereNothingListensFailsClearly) {
  int port;
  {
    auto server = StartOrDie();
    port = server->port();
  }
  absl::StatusOr<std::unique_ptr<FrameConnection>> c = FrameConnection::Connect(
      absl::StrCat("127.0.0.1:", port), kMethod, absl::Seconds(1), absl::Seconds(1));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(c.status().message(), HasSubstr(absl::StrCat("127.0.0.1:", port)));
}

TEST(FramesTest, AdvertisedPortTakesTheDialedHost) {
  EXPECT_EQ(*FrameAddressFor(":7000", "10.0.0.2:50051"), "10.0.0.2:7000");
  EXPECT_EQ(*FrameAddressFor(":7000", "[::1]:50051"), "[::1]:7000");
  EXPECT_EQ(*FrameAddressFor("proxy:9", "10.0.0.2:50051"), "proxy:9");
  EXPECT_FALSE(FrameAddressFor(":7000", "no-port").ok());
}

// FrameCall with a real protobuf message: the request's address comes back in the answer's.
using EchoCall = FrameCall<moe::v1::FrameEndpoint, moe::v1::FrameEndpoint>;

// For calls whose peer never moves: asking where it went is a failure.
EchoCall::Locator NoLocator() {
  return [] { return absl::StatusOr<std::string>(absl::UnavailableError("not expected")); };
}

FrameServer::Handler EchoProto(std::atomic<int>* calls = nullptr,
                               absl::Notification* hold = nullptr) {
  return [calls, hold](absl::string_view in, std::string* out) {
    if (calls != nullptr) ++*calls;
    if (hold != nullptr) hold->WaitForNotification();
    moe::v1::FrameEndpoint req;
    if (!req.ParseFromArray(in.data(), static_cast<int>(in.size()))) {
      return absl::InvalidArgumentError("not a FrameEndpoint");
    }
    req.set_method("echoed");
    req.SerializeToString(out);
    return absl::OkStatus();
  };
}

TEST(FrameCallTest, AnswersThroughTheLinkWait) {
  auto server = StartOrDie(EchoProto());
  EchoCall call("peer", kMethod, Address(*server), NoLocator(), absl::Seconds(2));
  grpc::CompletionQueue cq;
  moe::v1::FrameEndpoint req, resp;
  for (int i = 0; i < 3; ++i) {
    req.set_address(absl::StrCat("message ", i));
    call.Send(&req, &resp);
    WaitForStreamCalls(cq, {&call}, absl::Now() + absl::Seconds(10));
    ASSERT_TRUE(call.status().ok()) << call.status().error_message();
    EXPECT_EQ(resp.address(), absl::StrCat("message ", i));
    EXPECT_EQ(resp.method(), "echoed");
  }
  CloseStreamCalls(cq, {&call});
}

TEST(FrameCallTest, NoAnswerByTheDeadlineIsDeadlineExceeded) {
  absl::Notification hold;
  auto server = StartOrDie(EchoProto(nullptr, &hold));
  EchoCall call("slow peer", kMethod, Address(*server), NoLocator(), absl::Seconds(2));
  grpc::CompletionQueue cq;
  moe::v1::FrameEndpoint req, resp;
  call.Send(&req, &resp);
  const absl::Time start = absl::Now();
  WaitForStreamCalls(cq, {&call}, start + absl::Milliseconds(200));
  EXPECT_EQ(call.status().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  hold.Notify();
  CloseStreamCalls(cq, {&call});
}

TEST(FrameCallTest, APeerThatRestartedOnAnotherPortIsFoundAgainAndTheMessageResent) {
  std::atomic<int> calls{0};
  auto first = StartOrDie(EchoProto(&calls));
  std::unique_ptr<FrameServer> second;
  int located = 0;
  EchoCall call(
      "peer", kMethod, Address(*first),
      [&]() -> absl::StatusOr<std::string> {
        ++located;
        return Address(*second);
      },
      absl::Seconds(2));
  grpc::CompletionQueue cq;
  moe::v1::FrameEndpoint req, resp;
  req.set_address("one");
  call.Send(&req, &resp);
  WaitForStreamCalls(cq, {&call}, absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(call.status().ok());
  // The peer goes away (its port with it) and comes back elsewhere.
  first.reset();
  second = StartOrDie(EchoProto(&calls));
  req.set_address("two");
  call.Send(&req, &resp);
  WaitForStreamCalls(cq, {&call}, absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(call.status().ok()) << call.status().error_message();
  EXPECT_EQ(resp.address(), "two");
  EXPECT_EQ(located, 1);
  EXPECT_EQ(calls.load(), 2);
  CloseStreamCalls(cq, {&call});
}

TEST(FrameCallTest, APeerThatIsGoneIsUnavailableNamingIt) {
  std::string address;
  {
    auto server = StartOrDie(EchoProto());
    address = Address(*server);
  }
  EchoCall call("pool-7", kMethod, address, NoLocator(), absl::Seconds(1));
  grpc::CompletionQueue cq;
  moe::v1::FrameEndpoint req, resp;
  call.Send(&req, &resp);
  WaitForStreamCalls(cq, {&call}, absl::Now() + absl::Seconds(10));
  EXPECT_EQ(call.status().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(call.status().error_message(), HasSubstr("pool-7"));
  CloseStreamCalls(cq, {&call});
}

}  // namespace
}  // namespace moe
