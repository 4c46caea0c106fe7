// MessageStreams (server) and StreamCall (client) over real gRPC on loopback: a Router service
// whose RouteStream answers top_k = 10 * layer, fails layer < 0, and holds layer 99 until told.
#include "services/common/stream_call.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "moe/v1/router.grpc.pb.h"
#include "services/common/message_streams.h"
#include "services/common/server.h"

namespace moe {
namespace {

using ::testing::HasSubstr;
using RouteCall = StreamCall<moe::v1::RouteRequest, moe::v1::RouteResponse>;

class TestRouter final : public moe::v1::Router::CallbackService {
 public:
  grpc::ServerBidiReactor<moe::v1::RouteRequest, moe::v1::RouteResponse>* RouteStream(
      grpc::CallbackServerContext*) override {
    return streams.Open();
  }

  absl::Notification release;  // lets a held layer-99 message be answered
  MessageStreams<moe::v1::RouteRequest, moe::v1::RouteResponse> streams{
      [this](const moe::v1::RouteRequest& req, moe::v1::RouteResponse* resp) {
        if (req.layer() < 0) {
          return absl::InvalidArgumentError(absl::StrCat("layer: must be >= 0, got ", req.layer()));
        }
        if (req.layer() == 99) release.WaitForNotification();
        resp->set_top_k(10 * req.layer());
        return absl::OkStatus();
      }};
};

// One server process-internal, on a loopback port that survives a restart.
class Server {
 public:
  explicit Server(int port = 0) {
    grpc::ServerBuilder b;
    b.AddListeningPort(absl::StrCat("127.0.0.1:", port), grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(&service_);
    server_ = b.BuildAndStart();
  }
  ~Server() { Stop(); }
  void Stop() {
    if (server_ == nullptr) return;
    service_.streams.Close();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_->Wait();
    server_.reset();
  }
  int port() const { return port_; }
  TestRouter& service() { return service_; }

 private:
  TestRouter service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

class StreamCallTest : public ::testing::Test {
 protected:
  void Connect(int port) {
    stub_ = moe::v1::Router::NewStub(grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                                               grpc::InsecureChannelCredentials(),
                                                               InternalChannelArguments()));
    moe::v1::Router::Stub* stub = stub_.get();
    call_ = std::make_unique<RouteCall>(
        [stub](grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
          return stub->PrepareAsyncRouteStream(ctx, cq);
        },
        &cq_);
  }

  void TearDown() override {
    std::vector<StreamOpTarget*> calls;
    if (call_ != nullptr) calls.push_back(call_.get());
    CloseStreamCalls(cq_, calls);
  }

  // Sends one message and waits for its answer; returns the status, fills *top_k.
  grpc::Status Ask(int layer, int* top_k, absl::Duration deadline = absl::Seconds(5)) {
    moe::v1::RouteRequest req;
    req.set_layer(layer);
    moe::v1::RouteResponse resp;
    call_->Send(&req, &resp);
    WaitForStreamCalls(cq_, {call_.get()}, absl::Now() + deadline);
    *top_k = resp.top_k();
    return call_->status();
  }

  grpc::CompletionQueue cq_;
  std::unique_ptr<moe::v1::Router::Stub> stub_;
  std::unique_ptr<RouteCall> call_;
};

TEST_F(StreamCallTest, AnswersEveryMessageInOrderOnOneStream) {
  Server server;
  Connect(server.port());
  for (int layer = 1; layer <= 5; ++layer) {
    int top_k = 0;
    ASSERT_TRUE(Ask(layer, &top_k).ok());
    EXPECT_EQ(top_k, 10 * layer);
    EXPECT_TRUE(call_->open());
  }
  EXPECT_EQ(server.service().streams.open_streams(), 1);
}

TEST_F(StreamCallTest, AHandlerErrorEndsTheStreamWithItsStatusAndTheNextMessageReopens) {
  Server server;
  Connect(server.port());
  int top_k = 0;
  ASSERT_TRUE(Ask(1, &top_k).ok());
  const grpc::Status bad = Ask(-3, &top_k);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.error_message(), HasSubstr("layer: must be >= 0, got -3"));
  EXPECT_FALSE(call_->open());
  ASSERT_TRUE(Ask(2, &top_k).ok());
  EXPECT_EQ(top_k, 20);
}

TEST_F(StreamCallTest, NoAnswerBeforeTheDeadlineIsDeadlineExceededAndTheNextMessageWorks) {
  Server server;
  Connect(server.port());
  int top_k = 0;
  const absl::Time start = absl::Now();
  const grpc::Status late = Ask(99, &top_k, absl::Milliseconds(200));
  EXPECT_EQ(late.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  server.service().release.Notify();
  ASSERT_TRUE(Ask(3, &top_k).ok());
  EXPECT_EQ(top_k, 30);
}

TEST_F(StreamCallTest, ClosingEndsIdleStreamsAndRefusesNewOnes) {
  Server server;
  Connect(server.port());
  int top_k = 0;
  ASSERT_TRUE(Ask(1, &top_k).ok());
  server.service().streams.Close();
  // The idle stream ends; the message is resent once on a new stream, which is refused.
  const grpc::Status refused = Ask(2, &top_k);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.error_message(), HasSubstr("shutting down"));
  for (int i = 0; i < 100 && server.service().streams.open_streams() > 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(server.service().streams.open_streams(), 0);
}

TEST_F(StreamCallTest, AServerRestartedWhileTheStreamWasIdleCostsNoError) {
  auto server = std::make_unique<Server>();
  const int port = server->port();
  Connect(port);
  int top_k = 0;
  ASSERT_TRUE(Ask(1, &top_k).ok());
  server->Stop();
  server = std::make_unique<Server>(port);
  ASSERT_EQ(server->port(), port);
  const grpc::Status s = Ask(4, &top_k);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(top_k, 40);
}

TEST_F(StreamCallTest, AServerThatIsGoneIsUnavailable) {
  auto server = std::make_unique<Server>();
  Connect(server->port());
  int top_k = 0;
  ASSERT_TRUE(Ask(1, &top_k).ok());
  server.reset();
  EXPECT_EQ(Ask(2, &top_k).error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace moe
