// The OpenAI-compatible API on a real HTTP server in front of an in-process cluster: answers are
// checked against the gRPC API's, and errors against OpenAI's shape.
#include "services/orchestrator/openai_api.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "services/common/deadline.h"
#include "services/orchestrator/orchestrator_service.h"
#include "services/testing/in_process_cluster.h"

namespace moe {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using testing::InProcessCluster;
using testing::InProcessClusterOptions;

struct HttpAnswer {
  int status = 0;
  std::string head;
  std::string body;  // de-chunked
};

// One request on its own connection (Connection: close); reads the whole answer.
HttpAnswer Call(int port, const std::string& method, const std::string& path,
                const std::string& body) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string req =
      absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: x\r\n",
                   "Content-Type: application/json\r\nContent-Length: ", body.size(),
                   "\r\nConnection: close\r\n\r\n", body);
  EXPECT_EQ(send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  std::string raw;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 60000) <= 0) break;
    char buf[8192];
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    raw.append(buf, n);
  }
  close(fd);
  HttpAnswer a;
  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return a;
  a.head = raw.substr(0, end);
  (void)absl::SimpleAtoi(raw.substr(9, 3), &a.status);
  std::string rest = raw.substr(end + 4);
  if (a.head.find("Transfer-Encoding: chunked") == std::string::npos) {
    a.body = rest;
    return a;
  }
  size_t pos = 0;
  for (;;) {
    const size_t line = rest.find("\r\n", pos);
    if (line == std::string::npos) break;
    size_t size = 0;
    if (!absl::SimpleHexAtoi(rest.substr(pos, line - pos), &size) || size == 0) break;
    a.body += rest.substr(line + 2, size);
    pos = line + 2 + size + 2;
  }
  return a;
}

class OpenAiApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InProcessClusterOptions options;
    options.orchestrator = true;
    options.lanes = 2;
    options.max_batch = 4;
    absl::StatusOr<std::unique_ptr<InProcessCluster>> c =
        InProcessCluster::Start(std::move(options));
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = *std::move(c);
    api_ = std::make_unique<OpenAiApi>(&cluster_->orchestrator().generations(), cluster_->config(),
                                       "tiny-moe");
    HttpServerOptions http_options;
    http_options.max_body_bytes = 4096;
    http_options.error_body = &OpenAiApi::ServerErrorBody;
    absl::StatusOr<std::unique_ptr<HttpServer>> s = HttpServer::Start(
        "127.0.0.1:0", "--http_listen", http_options,
        [this](const HttpRequest& req, HttpResponse& resp) { api_->Handle(req, resp); });
    ASSERT_TRUE(s.ok()) << s.status();
    http_ = *std::move(s);
    stub_ = moe::v1::Orchestrator::NewStub(
        grpc::CreateChannel(cluster_->orchestrator_address(), grpc::InsecureChannelCredentials()));
  }

  json Post(const json& body, int want_status = 200) {
    HttpAnswer a = Call(http_->port(), "POST", "/v1/completions", body.dump());
    EXPECT_EQ(a.status, want_status) << a.body;
    return json::parse(a.body, nullptr, false);
  }

  moe::v1::CompleteResponse GrpcComplete(const moe::v1::GenerateRequest& req) {
    moe::v1::CompleteResponse resp;
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(60));
    EXPECT_TRUE(stub_->Complete(&ctx, req, &resp).ok());
    return resp;
  }

  static moe::v1::GenerateRequest Greedy(const std::string& prompt, int max_tokens) {
    moe::v1::GenerateRequest req;
    req.set_prompt(prompt);
    req.set_max_tokens(max_tokens);
    req.set_temperature(0);
    return req;
  }

  std::unique_ptr<InProcessCluster> cluster_;
  std::unique_ptr<OpenAiApi> api_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<moe::v1::Orchestrator::Stub> stub_;
};

TEST_F(OpenAiApiTest, GreedyCompletionEqualsTheGrpcApisWithUsage) {
  json r =
      Post({{"model", "tiny-moe"}, {"prompt", "hello"}, {"max_tokens", 7}, {"temperature", 0}});
  const moe::v1::CompleteResponse grpc = GrpcComplete(Greedy("hello", 7));
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["model"], "tiny-moe");
  EXPECT_THAT(r["id"].get<std::string>(), ::testing::StartsWith("cmpl-"));
  EXPECT_GT(r["created"].get<int64_t>(), 1700000000);
  ASSERT_EQ(r["choices"].size(), 1u);
  EXPECT_EQ(r["choices"][0]["text"], grpc.text());
  EXPECT_EQ(r["choices"][0]["index"], 0);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(r["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(r["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(r["usage"]["completion_tokens"], 7);
  EXPECT_EQ(r["usage"]["total_tokens"], 12);
}

TEST_F(OpenAiApiTest, StreamSendsOneEventPerTokenThenDone) {
  HttpAnswer a = Call(http_->port(), "POST", "/v1/completions",
                      json({{"model", "tiny-moe"},
                            {"prompt", "hello"},
                            {"max_tokens", 6},
                            {"temperature", 0},
                            {"stream", true},
                            {"stream_options", {{"include_usage", true}}}})
                          .dump());
  EXPECT_EQ(a.status, 200);
  EXPECT_THAT(a.head, HasSubstr("Content-Type: text/event-stream"));
  std::vector<std::string> events = absl::StrSplit(a.body, "\n\n", absl::SkipEmpty());
  ASSERT_EQ(events.size(), 6u + 2u) << a.body;  // 6 tokens, usage, [DONE]
  std::string text;
  for (int i = 0; i < 6; ++i) {
    ASSERT_THAT(events[i], ::testing::StartsWith("data: "));
    json e = json::parse(events[i].substr(6));
    text += e["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(e["choices"][0]["finish_reason"], i == 5 ? json("length") : json(nullptr));
  }
  EXPECT_EQ(text, GrpcComplete(Greedy("hello", 6)).text());
  json usage = json::parse(events[6].substr(6));
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 6);
  EXPECT_EQ(events[7], "data: [DONE]");
}

TEST_F(OpenAiApiTest, PromptListsAndNGiveChoicesInOpenAisOrder) {
  json r = Post({{"model", "tiny-moe"},
                 {"prompt", {"hello", "world"}},
                 {"max_tokens", 4},
                 {"n", 2},
                 {"seed", 9},
                 {"logprobs", 2},
                 {"stop", {"zzzz"}}});
  ASSERT_EQ(r["choices"].size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const json& c = r["choices"][i];
    EXPECT_EQ(c["index"], i);
    moe::v1::GenerateRequest req = Greedy(i < 2 ? "hello" : "world", 4);
    req.set_temperature(1);
    req.set_seed(9 + i % 2);
    EXPECT_EQ(c["text"], GrpcComplete(req).text()) << "choice " << i;
    ASSERT_EQ(c["logprobs"]["tokens"].size(), 4u);
    ASSERT_EQ(c["logprobs"]["top_logprobs"][0].size(), 2u);
    EXPECT_LE(c["logprobs"]["token_logprobs"][0].get<double>(), 0);
  }
  EXPECT_EQ(r["usage"]["prompt_tokens"], 10);
  EXPECT_EQ(r["usage"]["completion_tokens"], 16);
}

TEST_F(OpenAiApiTest, EchoPutsThePromptFirst) {
  json r = Post({{"model", "tiny-moe"},
                 {"prompt", "hi"},
                 {"max_tokens", 3},
                 {"temperature", 0},
                 {"echo", true}});
  EXPECT_EQ(r["choices"][0]["text"], "hi" + GrpcComplete(Greedy("hi", 3)).text());
}

TEST_F(OpenAiApiTest, RoutingExtensionShowsEachTokensExpertsAsGenerateDoes) {
  json r = Post({{"model", "tiny-moe"},
                 {"prompt", "hi"},
                 {"max_tokens", 3},
                 {"temperature", 0},
                 {"seed", 3},
                 {"moe_routing", true}});
  moe::v1::GenerateRequest req = Greedy("hi", 3);
  req.set_seed(3);
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(60));
  auto reader = stub_->Generate(&ctx, req);
  std::vector<moe::v1::GenerateResponse> msgs;
  moe::v1::GenerateResponse m;
  while (reader->Read(&m)) msgs.push_back(m);
  ASSERT_TRUE(reader->Finish().ok());
  const json& routing = r["choices"][0]["moe_routing"];
  ASSERT_EQ(routing.size(), msgs.size());
  for (size_t t = 0; t < msgs.size(); ++t) {
    EXPECT_EQ(routing[t]["token_id"], msgs[t].token_id());
    ASSERT_EQ(routing[t]["layers"].size(), static_cast<size_t>(msgs[t].routing_size()));
    for (int l = 0; l < msgs[t].routing_size(); ++l) {
      const json& experts = routing[t]["layers"][l]["experts"];
      ASSERT_EQ(experts.size(), static_cast<size_t>(msgs[t].routing(l).experts_size()));
      for (size_t e = 0; e < experts.size(); ++e) {
        const moe::v1::ExpertChoice& want = msgs[t].routing(l).experts(e);
        EXPECT_EQ(experts[e]["expert"], want.expert());
        EXPECT_EQ(experts[e]["micro"], want.micro());
        EXPECT_FLOAT_EQ(experts[e]["weight"].get<float>(), want.weight());
        EXPECT_EQ(experts[e]["pool"], want.pool());
        EXPECT_FALSE(want.pool().empty());
      }
    }
  }
  json plain = Post({{"model", "tiny-moe"}, {"prompt", "hi"}, {"max_tokens", 1}});
  EXPECT_FALSE(plain["choices"][0].contains("moe_routing"));
}

TEST_F(OpenAiApiTest, BadRequestsGetOpenAisErrorShapeNamingTheField) {
  json e = Post({{"model", "tiny-moe"}, {"prompt", "x"}, {"max_tokens", 0}}, 400);
  EXPECT_EQ(e["error"]["param"], "max_tokens");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["message"], "max_tokens: must be in [1, 1024], got 0");
  EXPECT_TRUE(e["error"].contains("code"));
  e = Post({{"model", "tiny-moe"}, {"prompt", "x"}, {"n", 99}}, 400);
  EXPECT_EQ(e["error"]["param"], "n");
  e = Post({{"model", "tiny-moe"}, {"prompt", "x"}, {"presence_penalty", 5}}, 400);
  EXPECT_EQ(e["error"]["param"], "presence_penalty");
  e = Post({{"model", "gpt-4"}, {"prompt", "x"}}, 404);
  EXPECT_EQ(e["error"]["code"], "model_not_found");
  EXPECT_EQ(e["error"]["param"], "model");
  HttpAnswer a = Call(http_->port(), "POST", "/v1/completions", "{not json");
  EXPECT_EQ(a.status, 400);
  EXPECT_THAT(json::parse(a.body)["error"]["message"].get<std::string>(), HasSubstr("JSON"));
  a = Call(http_->port(), "POST", "/v1/completions", std::string(5000, ' '));
  EXPECT_EQ(a.status, 413);
  EXPECT_THAT(json::parse(a.body)["error"]["message"].get<std::string>(),
              HasSubstr("at most 4096"));
  a = Call(http_->port(), "GET", "/v1/completions", "");
  EXPECT_EQ(a.status, 405);
  a = Call(http_->port(), "GET", "/v1/chat", "");
  EXPECT_EQ(a.status, 404);
  EXPECT_EQ(json::parse(a.body)["error"]["code"], "unknown_url");
}

TEST_F(OpenAiApiTest, ModelsListsTheServedModel) {
  HttpAnswer a = Call(http_->port(), "GET", "/v1/models", "");
  ASSERT_EQ(a.status, 200);
  json j = json::parse(a.body);
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "tiny-moe");
  EXPECT_EQ(j["data"][0]["object"], "model");
  EXPECT_EQ(Call(http_->port(), "GET", "/v1/models/tiny-moe", "").status, 200);
  EXPECT_EQ(Call(http_->port(), "GET", "/v1/models/other", "").status, 404);
}

}  // namespace
}  // namespace moe
