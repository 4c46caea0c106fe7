// Every public method of the router, the expert pools and the orchestrator, called over gRPC on
// a whole in-process cluster (real servers on loopback, a tiny random model) with requests
// decoded from outside bytes. Each call must end OK or with a clear error: a code other than
// UNKNOWN, INTERNAL or UNIMPLEMENTED, a message, and within its deadline (no hang). The cluster
// lives for the whole run, so state a call leaves (a drained pool, a new policy) is fuzzed too.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "absl/strings/str_cat.h"
#include "moe/v1/expert.grpc.pb.h"
#include "moe/v1/orchestrator.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"
#include "services/testing/in_process_cluster.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using moe::v1::ExpertPool;
using moe::v1::Orchestrator;
using moe::v1::Router;

struct Clients {
  std::unique_ptr<moe::testing::InProcessCluster> cluster;
  std::unique_ptr<Router::Stub> router;
  std::unique_ptr<ExpertPool::Stub> pool;
  std::unique_ptr<Orchestrator::Stub> orchestrator;
};
Clients* clients = nullptr;

std::shared_ptr<grpc::Channel> Dial(const std::string& address) {
  return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
}

void SetDeadline(grpc::ClientContext* ctx, absl::Duration d) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + d));
}

// `timeout_ok`: a stream that runs until its deadline by design (WatchRouting).
void Check(const grpc::Status& s, const char* method, bool timeout_ok = false) {
  if (std::getenv("MOE_FUZZ_VERBOSE") != nullptr) {
    std::fprintf(stderr, "%s: %d %s\n", method, s.error_code(), s.error_message().c_str());
  }
  if (s.ok()) return;
  const grpc::StatusCode code = s.error_code();
  FUZZ_CHECK(code != grpc::StatusCode::UNKNOWN && code != grpc::StatusCode::INTERNAL &&
                 code != grpc::StatusCode::UNIMPLEMENTED,
             absl::StrCat(method, ": code ", code, ": ", s.error_message()));
  FUZZ_CHECK(timeout_ok || code != grpc::StatusCode::DEADLINE_EXCEEDED,
             absl::StrCat(method, " did not answer within its deadline"));
  FUZZ_CHECK(!s.error_message().empty(),
             absl::StrCat(method, ": code ", code, " without a message"));
}

template <typename Stub, typename Req, typename Resp>
void Unary(Stub* stub, grpc::Status (Stub::*call)(grpc::ClientContext*, const Req&, Resp*),
           const std::string& bytes, const char* method) {
  Req req;
  if (!req.ParseFromString(bytes)) return;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(20));
  Resp resp;
  Check((stub->*call)(&ctx, req, &resp), method);
}

// Generation requests keep their validity but not their length: a valid max_tokens becomes at
// most 4, so one input costs milliseconds; out-of-range values still reach the validator.
bool ParseGenerate(const std::string& bytes, moe::v1::GenerateRequest* req) {
  if (!req->ParseFromString(bytes)) return false;
  if (!req->has_max_tokens() || (req->max_tokens() > 4 && req->max_tokens() <= 1024)) {
    req->set_max_tokens(4);
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  moe::testing::InProcessClusterOptions options;
  options.orchestrator = true;
  auto cluster = moe::testing::InProcessCluster::Start(std::move(options));
  FUZZ_CHECK(cluster.ok(), cluster.status().ToString());
  clients = new Clients;
  clients->cluster = *std::move(cluster);
  clients->cluster->router().StartHealthChecks();  // the control plane: drains, rebalances, joins
  clients->router = Router::NewStub(Dial(clients->cluster->router_address()));
  clients->pool = ExpertPool::NewStub(Dial(clients->cluster->pool_address(0)));
  clients->orchestrator = Orchestrator::NewStub(Dial(clients->cluster->orchestrator_address()));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moe::fuzz::ByteReader in(data, size);
  const uint8_t method = in.Byte();
  const std::string bytes = in.Rest();
  Router::Stub* router = clients->router.get();
  ExpertPool::Stub* pool = clients->pool.get();
  Orchestrator::Stub* orch = clients->orchestrator.get();
  switch (method % 17) {
    case 0:
      Unary(router, &Router::Stub::Route, bytes, "Router.Route");
      break;
    case 1:
      Unary(router, &Router::Stub::GetPolicy, bytes, "Router.GetPolicy");
      break;
    case 2:
      Unary(router, &Router::Stub::SetPolicy, bytes, "Router.SetPolicy");
      break;
    case 3:
      Unary(router, &Router::Stub::GetPlacement, bytes, "Router.GetPlacement");
      break;
    case 4:
      Unary(router, &Router::Stub::ReportPoolFailure, bytes, "Router.ReportPoolFailure");
      break;
    case 5:
      Unary(router, &Router::Stub::RegisterPool, bytes, "Router.RegisterPool");
      break;
    case 6:
      Unary(router, &Router::Stub::DrainPool, bytes, "Router.DrainPool");
      break;
    case 7:
      Unary(router, &Router::Stub::Rebalance, bytes, "Router.Rebalance");
      break;
    case 8:
      Unary(pool, &ExpertPool::Stub::Forward, bytes, "ExpertPool.Forward");
      break;
    case 9:
      Unary(pool, &ExpertPool::Stub::Describe, bytes, "ExpertPool.Describe");
      break;
    case 10:
      Unary(pool, &ExpertPool::Stub::LoadExperts, bytes, "ExpertPool.LoadExperts");
      break;
    case 11:
      Unary(pool, &ExpertPool::Stub::DropExperts, bytes, "ExpertPool.DropExperts");
      break;
    case 12:
      Unary(orch, &Orchestrator::Stub::GetModelInfo, bytes, "Orchestrator.GetModelInfo");
      break;
    case 13:
      Unary(orch, &Orchestrator::Stub::GetPlacement, bytes, "Orchestrator.GetPlacement");
      break;
    case 14: {
      moe::v1::GenerateRequest req;
      if (!ParseGenerate(bytes, &req)) break;
      grpc::ClientContext ctx;
      SetDeadline(&ctx, absl::Seconds(20));
      moe::v1::CompleteResponse resp;
      Check(orch->Complete(&ctx, req, &resp), "Orchestrator.Complete");
      break;
    }
    case 15: {
      moe::v1::GenerateRequest req;
      if (!ParseGenerate(bytes, &req)) break;
      grpc::ClientContext ctx;
      SetDeadline(&ctx, absl::Seconds(20));
      auto reader = orch->Generate(&ctx, req);
      moe::v1::GenerateResponse resp;
      while (reader->Read(&resp)) {
      }
      Check(reader->Finish(), "Orchestrator.Generate");
      break;
    }
    default: {
      moe::v1::WatchRoutingRequest req;
      if (!req.ParseFromString(bytes)) break;
      grpc::ClientContext ctx;
      SetDeadline(&ctx, absl::Milliseconds(200));
      auto reader = orch->WatchRouting(&ctx, req);
      moe::v1::WatchRoutingResponse resp;
      while (reader->Read(&resp)) {
      }
      Check(reader->Finish(), "Orchestrator.WatchRouting", /*timeout_ok=*/true);
      break;
    }
  }
  return 0;
}
