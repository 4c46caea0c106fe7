// The HTTP API against in-process fakes of the orchestrator and the router, over real sockets:
// routes, status codes, event-stream framing, and that gRPC calls are cancelled when the HTTP
// client goes away.
#include "clients/viewer/server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "moe/v1/orchestrator.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace moe::viewer {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

// ---------- fakes ----------

moe::v1::LayerRouting Routing(int layer, int expert) {
  moe::v1::LayerRouting r;
  r.set_layer(layer);
  auto* c = r.add_experts();
  c->set_id(expert);
  c->set_expert(expert);
  c->set_weight(1.f);
  c->set_pool("pool-a");
  return r;
}

class FakeOrchestrator final : public moe::v1::Orchestrator::Service {
 public:
  grpc::Status GetModelInfo(grpc::ServerContext*, const moe::v1::GetModelInfoRequest*,
                            moe::v1::ModelInfo* info) override {
    info->set_name("fake-moe");
    info->set_n_layers(2);
    info->set_n_experts(4);
    info->set_granularity(1);
    info->set_top_k(1);
    info->set_parameters(123456789012);
    info->set_expert_profiles_json(R"({"layers": [{"layer": 0, "experts": []}]})");
    return grpc::Status::OK;
  }

  grpc::Status GetPlacement(grpc::ServerContext*, const moe::v1::GetPlacementRequest*,
                            moe::v1::Placement* placement) override {
    auto* pool = placement->add_pools();
    pool->set_name("pool-a");
    pool->set_healthy(true);
    return grpc::Status::OK;
  }

  grpc::Status Generate(grpc::ServerContext* context, const moe::v1::GenerateRequest* request,
                        grpc::ServerWriter<moe::v1::GenerateResponse>* writer) override {
    {
      absl::MutexLock lock(&mu_);
      last_request_ = *request;
    }
    if (request->prompt().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "prompt: must be non-empty");
    }
    if (request->has_max_tokens() && request->max_tokens() < 1) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("max_tokens: must be in [1, 1024], got ", request->max_tokens()));
    }
    const bool slow = request->prompt() == "slow";
    const int prompt_tokens = request->echo_prompt() ? 2 : 0;
    const int total = prompt_tokens + request->max_tokens();
    for (int p = 0; p < total; ++p) {
      if (slow) absl::SleepFor(absl::Milliseconds(50));
      if (context->IsCancelled()) {
        generate_cancelled_ = true;
        return grpc::Status::CANCELLED;
      }
      moe::v1::GenerateResponse r;
      r.set_request_id("req-1");
      r.set_position(p);
      r.set_token_id(100 + p);
      r.set_text(p == 1 ? "line\nbreak" : absl::StrCat(" t", p));
      r.set_is_prompt(p < prompt_tokens);
      if (p == 0) r.set_seed(18446744073709551615ull);
      if (p + 1 == total) r.set_finish_reason("length");
      for (int l = 0; l < 2; ++l) *r.add_routing() = Routing(l, p % 4);
      if (!writer->Write(r)) {
        generate_cancelled_ = true;
        return grpc::Status::CANCELLED;
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status WatchRouting(grpc::ServerContext* context,
                            const moe::v1::WatchRoutingRequest* request,
                            grpc::ServerWriter<moe::v1::WatchRoutingResponse>* writer) override {
    ++active_watches_;
    for (int i = 0; !context->IsCancelled(); ++i) {
      moe::v1::WatchRoutingResponse batch;
      moe::v1::RoutingEvent& e = *batch.add_events();
      if (request->snapshot_interval_ms() > 0) {
        auto* layer = e.mutable_load()->add_layers();
        layer->set_layer(0);
        for (int64_t c : {3, 0, 1, 0}) layer->add_tokens(c);
        e.mutable_load()->set_interval_ms(request->snapshot_interval_ms());
      } else {
        batch.set_dropped(i >= 2 ? 3 : 0);  // the counter grows after a while
        auto* t = e.mutable_token();
        t->set_request_id("req-9");
        t->set_position(i);
        t->set_text("w");
        *t->mutable_routing() = Routing(i % 2, 1);
      }
      if (!writer->Write(batch)) break;
      absl::SleepFor(absl::Milliseconds(
          request->snapshot_interval_ms() > 0 ? request->snapshot_interval_ms() : 20));
    }
    --active_watches_;
    return grpc::Status::OK;
  }

  moe::v1::GenerateRequest last_request() {
    absl::MutexLock lock(&mu_);
    return last_request_;
  }

  std::atomic<int> active_watches_{0};
  std::atomic<bool> generate_cancelled_{false};

 private:
  absl::Mutex mu_;
  moe::v1::GenerateRequest last_request_ ABSL_GUARDED_BY(mu_);
};

class FakeRouter final : public moe::v1::Router::Service {
 public:
  grpc::Status GetPolicy(grpc::ServerContext*, const moe::v1::GetPolicyRequest*,
                         moe::v1::RoutingPolicy* policy) override {
    absl::MutexLock lock(&mu_);
    *policy = policy_;
    return grpc::Status::OK;
  }
  grpc::Status SetPolicy(grpc::ServerContext*, const moe::v1::SetPolicyRequest* request,
                         moe::v1::RoutingPolicy* policy) override {
    if (request->policy().top_k() < 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "top_k: must be >= 0");
    }
    absl::MutexLock lock(&mu_);
    policy_ = request->policy();
    *policy = policy_;
    return grpc::Status::OK;
  }

 private:
  absl::Mutex mu_;
  moe::v1::RoutingPolicy policy_ ABSL_GUARDED_BY(mu_) = [] {
    moe::v1::RoutingPolicy p;
    p.set_top_k(2);
    return p;
  }();
};

// ---------- a minimal HTTP client ----------

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string RequestText(absl::string_view method, absl::string_view path, absl::string_view body,
                        absl::string_view extra_headers = "") {
  return absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n",
                      "Content-Type: application/json\r\nContent-Length: ", body.size(), "\r\n",
                      extra_headers, "\r\n", body);
}

// Reads until `needle` is in the data (or, with an empty needle, until the peer closes), at most
// `timeout`.
std::string ReadUntil(int fd, absl::string_view needle, absl::Duration timeout) {
  std::string data;
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (!needle.empty() && absl::StrContains(data, needle)) break;
    pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    data.append(buf, n);
  }
  return data;
}

struct HttpResponse {
  int status = 0;
  std::string head;
  std::string body;
};

HttpResponse Fetch(int port, absl::string_view method, absl::string_view path,
                   absl::string_view body = "") {
  HttpResponse out;
  const int fd = Connect(port);
  if (fd < 0) return out;
  const std::string request = RequestText(method, path, body);
  (void)!write(fd, request.data(), request.size());
  const std::string data = ReadUntil(fd, "", absl::Seconds(20));
  close(fd);
  const size_t split = data.find("\r\n\r\n");
  out.head = data.substr(0, split);
  if (split != std::string::npos) out.body = data.substr(split + 4);
  std::vector<absl::string_view> first = absl::StrSplit(out.head, ' ');
  if (first.size() > 1) (void)absl::SimpleAtoi(first[1], &out.status);
  return out;
}

// The events of a text/event-stream body, as (event, data).
std::vector<std::pair<std::string, json>> Events(absl::string_view body) {
  std::vector<std::pair<std::string, json>> out;
  for (absl::string_view block : absl::StrSplit(body, "\n\n", absl::SkipEmpty())) {
    std::string event;
    std::string data;
    for (absl::string_view line : absl::StrSplit(block, '\n')) {
      if (absl::ConsumePrefix(&line, "event: ")) event = std::string(line);
      if (absl::ConsumePrefix(&line, "data: "))
        absl::StrAppend(&data, data.empty() ? "" : "\n", line);
    }
    if (!event.empty()) out.emplace_back(event, json::parse(data, nullptr, false));
  }
  return out;
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return condition();
}

// ---------- fixture ----------

class ViewerServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int grpc_port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &grpc_port);
    builder.RegisterService(&orchestrator_);
    builder.RegisterService(&router_);
    grpc_ = builder.BuildAndStart();
    ASSERT_NE(grpc_, nullptr);
    address_ = absl::StrCat("127.0.0.1:", grpc_port);

    web_root_ = fs::path(::testing::TempDir()) / absl::StrCat("viewer_server_web_", getpid());
    fs::create_directories(web_root_);
    std::ofstream(web_root_ / "index.html") << "<!doctype html><title>MoE viewer</title>";
    std::ofstream(web_root_ / "api.js") << "export const x = 1;";
  }

  void TearDown() override {
    if (viewer_ != nullptr) viewer_->Stop();
    grpc_->Shutdown(std::chrono::system_clock::now());
    fs::remove_all(web_root_);
  }

  ServeOptions Options() {
    ServeOptions o;
    o.listen = "127.0.0.1:0";
    o.target = address_;
    o.router = address_;
    o.web_root = web_root_.string();
    o.watch.sample_rate = 1;
    o.watch.snapshot_interval_ms = 100;
    o.http_threads = 8;
    return o;
  }

  void StartViewer(const ServeOptions& options) {
    absl::StatusOr<std::unique_ptr<ViewerServer>> s = ViewerServer::Start(options);
    ASSERT_TRUE(s.ok()) << s.status();
    viewer_ = *std::move(s);
    ASSERT_GT(viewer_->port(), 0);
  }

  FakeOrchestrator orchestrator_;
  FakeRouter router_;
  std::unique_ptr<grpc::Server> grpc_;
  std::string address_;
  fs::path web_root_;
  std::unique_ptr<ViewerServer> viewer_;
};

TEST_F(ViewerServerTest, ServesThePageWithItsContentTypes) {
  StartViewer(Options());
  HttpResponse r = Fetch(viewer_->port(), "GET", "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.head, HasSubstr("Content-Type: text/html"));
  EXPECT_THAT(r.body, HasSubstr("MoE viewer"));
  r = Fetch(viewer_->port(), "GET", "/api.js");
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.head, HasSubstr("Content-Type: text/javascript"));
  EXPECT_EQ(Fetch(viewer_->port(), "GET", "/missing.js").status, 404);
  EXPECT_EQ(Fetch(viewer_->port(), "GET", "/../../etc/passwd").status, 404);
  EXPECT_EQ(Fetch(viewer_->port(), "GET", "/api/nothing").status, 404);
  EXPECT_EQ(Fetch(viewer_->port(), "DELETE", "/api/info").status, 405);
}

TEST_F(ViewerServerTest, InfoHasModelPlacementAndProfiles) {
  StartViewer(Options());
  HttpResponse r = Fetch(viewer_->port(), "GET", "/api/info");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.head, HasSubstr("application/json"));
  const json j = json::parse(r.body);
  EXPECT_EQ(j["model"]["n_layers"], 2);  // what the e2e test checks first
  EXPECT_EQ(j["model"]["name"], "fake-moe");
  EXPECT_EQ(j["model"]["parameters"], "123456789012");
  EXPECT_EQ(j["placement"]["pools"][0]["name"], "pool-a");
  EXPECT_EQ(j["profiles"]["layers"][0]["layer"], 0);
}

TEST_F(ViewerServerTest, GenerateStreamsPromptAndGeneratedTokensThenDone) {
  StartViewer(Options());
  HttpResponse r = Fetch(viewer_->port(), "POST", "/api/generate",
                         R"({"prompt": "The jury", "max_tokens": 3, "temperature": 0,
                             "seed": 18446744073709551615})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.head, HasSubstr("text/event-stream"));
  const auto events = Events(r.body);
  ASSERT_EQ(events.size(), 6u) << r.body;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(events[i].first, "token");
    EXPECT_EQ(events[i].second["position"], i);
    EXPECT_EQ(events[i].second["is_prompt"], i < 2);
    EXPECT_EQ(events[i].second["routing"].size(), 2u);
  }
  EXPECT_EQ(events[1].second["text"], "line\nbreak");  // escaped in JSON, one data line
  EXPECT_EQ(events[0].second["seed"], "18446744073709551615");
  EXPECT_EQ(events[5].first, "done");
  EXPECT_EQ(events[5].second["finish_reason"], "length");
  EXPECT_EQ(events[5].second["prompt_tokens"], 2);
  EXPECT_EQ(events[5].second["generated_tokens"], 3);
  const moe::v1::GenerateRequest sent = orchestrator_.last_request();
  EXPECT_TRUE(sent.echo_prompt());
  EXPECT_EQ(sent.seed(), 18446744073709551615ull);
  EXPECT_TRUE(sent.has_temperature());
}

TEST_F(ViewerServerTest, RefusedGenerationAnswersItsHttpStatusAndMessage) {
  StartViewer(Options());
  HttpResponse r =
      Fetch(viewer_->port(), "POST", "/api/generate", R"({"prompt": "x", "max_tokens": 0})");
  EXPECT_EQ(r.status, 400);
  json j = json::parse(r.body, nullptr, false);
  EXPECT_EQ(j["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(j["message"], "max_tokens: must be in [1, 1024], got 0");

  r = Fetch(viewer_->port(), "POST", "/api/generate", R"({"prompt": "x", "top_p": "high"})");
  EXPECT_EQ(r.status, 400);
  j = json::parse(r.body, nullptr, false);
  EXPECT_THAT(j["message"].get<std::string>(), HasSubstr("top_p: must be a number"));
}

TEST_F(ViewerServerTest, OversizedBodyIsRefused) {
  StartViewer(Options());
  const int fd = Connect(viewer_->port());
  ASSERT_GE(fd, 0);
  const std::string head =
      "POST /api/generate HTTP/1.1\r\nHost: t\r\nContent-Length: 70000\r\n\r\n{\"prompt\":\"";
  ASSERT_EQ(write(fd, head.data(), head.size()), static_cast<ssize_t>(head.size()));
  const std::string data = ReadUntil(fd, "}", absl::Seconds(10));
  close(fd);
  EXPECT_THAT(data, HasSubstr("HTTP/1.1 413"));
  EXPECT_THAT(data, HasSubstr("over the limit of 65536 bytes"));
}

TEST_F(ViewerServerTest, GenerationIsCancelledWhenTheClientGoesAway) {
  StartViewer(Options());
  const int fd = Connect(viewer_->port());
  ASSERT_GE(fd, 0);
  const std::string request =
      RequestText("POST", "/api/generate", R"({"prompt": "slow", "max_tokens": 200})");
  ASSERT_EQ(write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  EXPECT_THAT(ReadUntil(fd, "event: token", absl::Seconds(10)), HasSubstr("event: token"));
  close(fd);
  // 200 tokens at 50 ms would take 10 s; a cancel ends it far sooner.
  EXPECT_TRUE(WaitFor([&] { return orchestrator_.generate_cancelled_.load(); }, absl::Seconds(5)));
}

TEST_F(ViewerServerTest, EventsStreamLoadTokensAndDroppedThenCancelUpstream) {
  StartViewer(Options());
  const int fd = Connect(viewer_->port());
  ASSERT_GE(fd, 0);
  const std::string request = RequestText("GET", "/api/events", "");
  ASSERT_EQ(write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  const std::string data = ReadUntil(fd, "event: dropped", absl::Seconds(10));
  EXPECT_THAT(data, HasSubstr("text/event-stream"));
  EXPECT_THAT(data, HasSubstr("retry: "));
  const auto events = Events(data.substr(data.find("\r\n\r\n") + 4));
  bool load = false;
  bool token = false;
  for (const auto& [name, j] : events) {
    if (name == "load") {
      load = true;
      EXPECT_EQ(j["layers"][0]["tokens"].size(), 4u);
    }
    if (name == "token") {
      token = true;
      EXPECT_TRUE(j.contains("layer"));  // lifted for live.js's onLiveToken
      EXPECT_EQ(j["experts"][0]["expert"], 1);
      EXPECT_EQ(j["request_id"], "req-9");
    }
    if (name == "dropped") {
      EXPECT_EQ(j["dropped"], 3);
    }
  }
  EXPECT_TRUE(load);
  EXPECT_TRUE(token);
  EXPECT_EQ(orchestrator_.active_watches_.load(), 2);  // tokens and load snapshots
  close(fd);
  EXPECT_TRUE(WaitFor([&] { return orchestrator_.active_watches_.load() == 0; }, absl::Seconds(5)))
      << orchestrator_.active_watches_.load() << " WatchRouting calls still open";
}

TEST_F(ViewerServerTest, PolicyReadsAndChangesOnlyTheFieldsGiven) {
  StartViewer(Options());
  HttpResponse r = Fetch(viewer_->port(), "GET", "/api/policy");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["top_k"], 2);
  r = Fetch(viewer_->port(), "POST", "/api/policy", R"({"noise_std": 0.5})");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["top_k"], 2);
  EXPECT_DOUBLE_EQ(j["noise_std"].get<double>(), 0.5);
  EXPECT_EQ(j["capacity_factor"], 0);
  r = Fetch(viewer_->port(), "POST", "/api/policy", R"({"top_k": -1})");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(json::parse(r.body)["message"].get<std::string>(), HasSubstr("top_k: must be >= 0"));
  r = Fetch(viewer_->port(), "POST", "/api/policy", R"({"top_k": "x"})");
  EXPECT_EQ(r.status, 400);
}

TEST_F(ViewerServerTest, PolicyWithoutRouterIs503) {
  ServeOptions o = Options();
  o.router = "";
  StartViewer(o);
  HttpResponse r = Fetch(viewer_->port(), "GET", "/api/policy");
  EXPECT_EQ(r.status, 503);
  EXPECT_THAT(json::parse(r.body)["message"].get<std::string>(), HasSubstr("--router"));
}

TEST_F(ViewerServerTest, UnreachableClusterIs503WithTheAddress) {
  ServeOptions o = Options();
  o.target = "127.0.0.1:1";
  StartViewer(o);
  HttpResponse r = Fetch(viewer_->port(), "GET", "/api/info");
  EXPECT_EQ(r.status, 503);
  const json j = json::parse(r.body);
  EXPECT_EQ(j["code"], "UNAVAILABLE");
  EXPECT_THAT(j["message"].get<std::string>(), HasSubstr("127.0.0.1:1"));
}

TEST_F(ViewerServerTest, ReplaysATrace) {
  const std::string trace = (web_root_ / "t.trace").string();
  {
    TraceHeader header;
    header.model.set_name("recorded-moe");
    header.model.set_n_layers(1);
    header.model.set_n_experts(4);
    auto w = TraceWriter::Create(trace, &header);
    ASSERT_TRUE(w.ok());
    moe::v1::RoutingEvent e;
    e.mutable_token()->set_text("x");
    *e.mutable_token()->mutable_routing() = Routing(0, 2);
    ASSERT_TRUE((*w)->Write(e).ok());
    ASSERT_TRUE((*w)->Close().ok());
  }
  ServeOptions o = Options();
  o.target = "";
  o.router = "";
  o.trace = trace;
  StartViewer(o);
  HttpResponse r = Fetch(viewer_->port(), "GET", "/api/info");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["model"]["name"], "recorded-moe");
  EXPECT_EQ(Fetch(viewer_->port(), "POST", "/api/generate", R"({"prompt": "x"})").status, 503);
  const int fd = Connect(viewer_->port());
  const std::string request = RequestText("GET", "/api/events", "");
  ASSERT_EQ(write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  EXPECT_THAT(ReadUntil(fd, "event: token", absl::Seconds(10)), HasSubstr("event: token"));
  close(fd);
}

}  // namespace
}  // namespace moe::viewer
