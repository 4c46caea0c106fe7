// Client side of frames (frames.h) for the orchestrator's links: a MessageCall whose messages
// travel on one frame connection to a peer, with StreamCall's contract (stream_call.h): one
// message at a time, its own deadline, waited for by WaitForStreamCalls with the link's other
// calls. The connection opens on first use and after it breaks; a connection that was already
// open and turns out to be gone before answering (the peer restarted) is reopened once and the
// message resent, after asking the peer again where its frames are (a restarted peer may listen
// on another port).
//
// Not thread-safe: one thread uses a FrameCall at a time.
#ifndef MOE_SERVICES_COMMON_FRAME_CALL_H_
#define MOE_SERVICES_COMMON_FRAME_CALL_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/common/frames.h"
#include "services/common/status.h"
#include "services/common/stream_call.h"

namespace moe {

template <typename Req, typename Resp>
class FrameCall final : public MessageCall<Req, Resp> {
 public:
  // Where the peer's frames are now (HOST:PORT), asked of the peer over gRPC; an error when it
  // offers none.
  using Locator = std::function<absl::StatusOr<std::string>()>;

  // `peer`: the peer's name in messages; `endpoint`: where its frames were found (the first
  // connection goes there; later ones ask `locate` again); `conn`: a connection already open
  // there, or null.
  FrameCall(std::string peer, std::string method, std::string endpoint, Locator locate,
            absl::Duration connect_timeout, std::unique_ptr<FrameConnection> conn = nullptr)
      : peer_(std::move(peer)),
        method_(std::move(method)),
        endpoint_(std::move(endpoint)),
        locate_(std::move(locate)),
        connect_timeout_(connect_timeout),
        conn_(std::move(conn)) {}

  void Send(const Req* req, Resp* resp) override {
    resp_ = resp;
    answered_ = false;
    resent_ = false;
    cancelled_ = false;
    error_ = grpc::Status::OK;
    request_.clear();
    req->SerializeToString(&request_);
    StartMessage();
  }

  const grpc::Status& status() const override { return error_; }
  absl::Time answered_at() const override { return answered_ ? answered_at_ : absl::Now(); }
  bool open() const { return conn_ != nullptr; }

  // StreamOpTarget.
  void OnEvent(int, bool) override {}  // nothing of a frame call goes through a queue
  bool Pending() const override { return pending_; }
  int poll_fd() const override { return pending_ ? conn_->fd() : -1; }
  void OnReadable() override {
    switch (conn_->ReadAvailable()) {
      case FrameConnection::Progress::kMore:
        return;
      case FrameConnection::Progress::kAnswered:
        pending_ = false;
        answered_at_ = absl::Now();
        if (conn_->code() != 0) {
          error_ = grpc::Status(static_cast<grpc::StatusCode>(conn_->code()), conn_->payload());
        } else if (!resp_->ParseFromString(conn_->payload())) {
          Break("the answer is not a valid " + resp_->GetTypeName());
        } else {
          answered_ = true;
        }
        return;
      case FrameConnection::Progress::kBroken:
        Break(conn_->error());
        return;
    }
  }
  void Cancel() override {
    if (!pending_) return;
    conn_.reset();  // the server's write fails, or its next read ends: it drops the message
    pending_ = false;
    cancelled_ = true;
    error_ =
        grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "no answer within the message deadline");
  }
  bool WantsResend() override {
    // As StreamCall: only a connection that was open before this message and broke (the peer
    // restarted or closed it on shutdown); an error answer would just come back again.
    if (answered_ || resent_ || !reused_ || cancelled_ || closing_ ||
        error_.error_code() != grpc::StatusCode::UNAVAILABLE) {
      return false;
    }
    resent_ = true;
    error_ = grpc::Status::OK;
    endpoint_.clear();
    StartMessage();
    return true;
  }
  void BeginClose() override {
    closing_ = true;
    pending_ = false;
    conn_.reset();
  }

 private:
  void StartMessage() {
    reused_ = conn_ != nullptr;
    if (conn_ == nullptr) {
      if (endpoint_.empty()) {
        absl::StatusOr<std::string> where = locate_();
        if (!where.ok()) return Fail(where.status().ToString());
        endpoint_ = *std::move(where);
      }
      absl::StatusOr<std::unique_ptr<FrameConnection>> c =
          FrameConnection::Connect(endpoint_, method_, connect_timeout_, connect_timeout_);
      if (!c.ok()) {
        endpoint_.clear();  // ask again next time
        return Fail(c.status().ToString());
      }
      conn_ = *std::move(c);
    }
    if (absl::Status s = conn_->Send(request_); !s.ok()) return Break(s.ToString());
    pending_ = true;
  }
  void Fail(const std::string& why) {
    pending_ = false;
    error_ =
        grpc::Status(grpc::StatusCode::UNAVAILABLE, absl::StrCat("frames to ", peer_, ": ", why));
  }
  // By value: `why` may be the connection's own error text, gone with it.
  void Break(std::string why) {
    conn_.reset();
    Fail(why);
  }

  const std::string peer_;
  const std::string method_;
  std::string endpoint_;
  const Locator locate_;
  const absl::Duration connect_timeout_;
  std::unique_ptr<FrameConnection> conn_;
  std::string request_;
  Resp* resp_ = nullptr;
  bool pending_ = false;
  bool answered_ = false;
  bool reused_ = false;
  bool resent_ = false;
  bool cancelled_ = false;
  bool closing_ = false;
  grpc::Status error_;
  absl::Time answered_at_;
};

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_FRAME_CALL_H_
