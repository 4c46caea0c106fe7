// The distributed system as real processes on loopback: same tokens as the embedded oracle,
// failover to replicas, fast failure without one, validation of every request field,
// reflection, health, the routing event stream.
#include "tests/integration/cluster.h"

#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/descriptor_database.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "models/embedded.h"
#include "moe/v1/expert.grpc.pb.h"
#include "moe/v1/orchestrator.grpc.pb.h"
#include "moe/v1/router.grpc.pb.h"
#include "services/common/tls.h"

namespace moe {
namespace {

using testing::Cluster;
using testing::ClusterOptions;
using ::testing::HasSubstr;

constexpr char kTinyConfig[] = R"({"name": "tiny", "vocab_size": 4096, "d_model": 32,
  "n_heads": 4, "n_layers": 2, "context_length": 64, "n_experts": 4, "n_shared": 1,
  "granularity": 2, "top_k": 3, "d_ff": 64})";

std::string TinyConfigFile() {
  const std::string path =
      std::filesystem::temp_directory_path() / absl::StrCat("moe_tiny_", getpid(), ".json");
  std::ofstream(path) << kTinyConfig;
  return path;
}

std::unique_ptr<moe::v1::Orchestrator::Stub> Orchestrator(const Cluster& c) {
  return moe::v1::Orchestrator::NewStub(c.Dial("orchestrator"));
}

void Deadline(grpc::ClientContext& ctx, int seconds) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

moe::v1::GenerateRequest Request(const std::string& prompt, int n, float temperature,
                                 uint64_t seed) {
  moe::v1::GenerateRequest r;
  r.set_prompt(prompt);
  r.set_max_tokens(n);
  r.set_temperature(temperature);
  r.set_seed(seed);
  return r;
}

struct StreamResult {
  std::vector<int> tokens;                               // generated token ids
  std::map<int, std::vector<std::vector<int>>> routing;  // position -> per layer flat ids
  std::string finish_reason;                             // the last message's
  grpc::Status status;
};

// Streams a Generate; `after_token(n)` runs after the n-th generated token arrives.
StreamResult Stream(moe::v1::Orchestrator::Stub& stub, moe::v1::GenerateRequest req,
                    const std::function<void(int)>& after_token = nullptr) {
  StreamResult out;
  grpc::ClientContext ctx;
  Deadline(ctx, 120);
  auto reader = stub.Generate(&ctx, req);
  moe::v1::GenerateResponse msg;
  while (reader->Read(&msg)) {
    std::vector<std::vector<int>> layers;
    for (const auto& l : msg.routing()) {
      layers.emplace_back();
      for (const auto& e : l.experts()) layers.back().push_back(e.id());
    }
    out.routing[msg.position()] = layers;
    if (msg.is_prompt()) continue;
    out.tokens.push_back(msg.token_id());
    if (!msg.finish_reason().empty()) out.finish_reason = msg.finish_reason();
    if (after_token) after_token(static_cast<int>(out.tokens.size()));
  }
  out.status = reader->Finish();
  return out;
}

// The same request through the embedded runner: the oracle.
StreamResult Embedded(const ModelSource& source, const moe::v1::GenerateRequest& req) {
  EngineOptions options;
  auto model = EmbeddedModel::Load(source, options);
  EXPECT_TRUE(model.ok()) << model.status();
  GenerateParams p;
  p.prompt = (*model)->tokenizer().Encode(req.prompt());
  p.max_new_tokens = req.max_tokens();
  p.sampling.temperature = req.temperature();
  p.sampling.seed = req.seed();
  p.sampling.top_k = req.top_k();
  p.sampling.top_p = req.has_top_p() ? req.top_p() : 1.0f;
  p.echo_prompt = true;
  StreamResult out;
  absl::Status s = (*model)->Generate(p, [&](const TokenOutput& t) {
    std::vector<std::vector<int>> layers;
    for (const LayerRoute& r : t.routing) layers.emplace_back(r.ids.begin(), r.ids.end());
    out.routing[t.position] = layers;
    if (!t.is_prompt) out.tokens.push_back(t.token_id);
  });
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

ModelSource Shipped() {
  ModelSource s;
  s.model_dir = Cluster::SourceDir() + "/models/brown-moe";
  return s;
}

class ShippedClusterTest : public ::testing::Test {
 protected:
  // A cluster that does not start must fail every test: gtest reports an ASSERT in
  // SetUpTestSuite as skipped tests, and ctest counts skipped tests as passing.
  static void SetUpTestSuite() {
    ClusterOptions o;
    o.model_args = {"--model=" + Cluster::SourceDir() + "/models/brown-moe"};
    o.pools = {{"pool-a", "0-3", ""}, {"pool-b", "4-7", ""}};
    o.metrics = true;
    cluster_ = new Cluster(o);
    start_ = new absl::Status(cluster_->Start());
  }
  static void TearDownTestSuite() {
    delete cluster_;
    delete start_;
  }
  void SetUp() override { ASSERT_TRUE(start_->ok()) << *start_; }
  static Cluster* cluster_;
  static absl::Status* start_;
};
Cluster* ShippedClusterTest::cluster_ = nullptr;
absl::Status* ShippedClusterTest::start_ = nullptr;

TEST_F(ShippedClusterTest, DistributedTokensEqualEmbeddedTokens) {
  auto stub = Orchestrator(*cluster_);
  const std::vector<moe::v1::GenerateRequest> reqs = {
      Request("The jury said", 24, 0.0f, 1), Request("It was a dark and stormy", 24, 0.8f, 7),
      Request("In the morning the", 24, 1.0f, 12345), Request("\"Yes,\" she said.", 16, 0.0f, 2)};
  for (const auto& req : reqs) {
    moe::v1::GenerateRequest with_prompt = req;
    with_prompt.set_echo_prompt(true);
    StreamResult remote = Stream(*stub, with_prompt);
    ASSERT_TRUE(remote.status.ok()) << remote.status.error_message();
    StreamResult local = Embedded(Shipped(), req);
    EXPECT_EQ(remote.tokens, local.tokens) << req.prompt();
    EXPECT_EQ(remote.routing, local.routing) << req.prompt();
  }
}

TEST_F(ShippedClusterTest, CompleteReturnsTheStreamedText) {
  auto stub = Orchestrator(*cluster_);
  grpc::ClientContext ctx;
  Deadline(ctx, 60);
  moe::v1::CompleteResponse resp;
  ASSERT_TRUE(stub->Complete(&ctx, Request("The jury said", 12, 0.0f, 1), &resp).ok());
  StreamResult streamed = Stream(*stub, Request("The jury said", 12, 0.0f, 1));
  EXPECT_EQ(std::vector<int>(resp.token_ids().begin(), resp.token_ids().end()), streamed.tokens);
  EXPECT_FALSE(resp.text().empty());
  EXPECT_EQ(resp.finish_reason(), "length");
}

TEST_F(ShippedClusterTest, EveryBadFieldGetsInvalidArgumentNamingIt) {
  auto stub = Orchestrator(*cluster_);
  struct Case {
    std::string name;
    std::function<void(moe::v1::GenerateRequest&)> edit;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"empty prompt", [](auto& r) { r.set_prompt(""); }, "prompt"},
      {"long prompt", [](auto& r) { r.set_prompt(std::string(3000, 'x') + " end"); }, "prompt"},
      {"zero tokens", [](auto& r) { r.set_max_tokens(0); }, "max_tokens"},
      {"too many tokens", [](auto& r) { r.set_max_tokens(5000); }, "max_tokens"},
      {"negative temperature", [](auto& r) { r.set_temperature(-0.5f); }, "temperature"},
      {"top_p zero", [](auto& r) { r.set_top_p(0.0f); }, "top_p"},
      {"top_p above one", [](auto& r) { r.set_top_p(1.5f); }, "top_p"},
      {"negative top_k", [](auto& r) { r.set_top_k(-1); }, "top_k"},
  };
  for (const Case& c : cases) {
    moe::v1::GenerateRequest req = Request("Hello", 4, 0.0f, 1);
    c.edit(req);
    StreamResult r = Stream(*stub, req);
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name;
    EXPECT_THAT(r.status.error_message(), HasSubstr(c.field)) << c.name;
    grpc::ClientContext ctx;
    Deadline(ctx, 10);
    moe::v1::CompleteResponse resp;
    EXPECT_EQ(stub->Complete(&ctx, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.name;
  }
  // Temperature 0 is greedy, not an error; omitted fields take defaults.
  moe::v1::GenerateRequest defaults;
  defaults.set_prompt("Hello there");
  StreamResult ok = Stream(*stub, defaults);
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
  // max_tokens defaults to 64; sampling (temperature 1, a random seed) may draw the end of text
  // sooner, and then says so.
  ASSERT_FALSE(ok.tokens.empty());
  EXPECT_LE(ok.tokens.size(), 64u);
  EXPECT_TRUE(ok.tokens.size() == 64u || ok.finish_reason == "stop")
      << ok.tokens.size() << " tokens, finish_reason \"" << ok.finish_reason << "\"";
}

TEST_F(ShippedClusterTest, InternalServicesValidateTensorsAndIds) {
  auto router = moe::v1::Router::NewStub(cluster_->Dial("router"));
  auto pool = moe::v1::ExpertPool::NewStub(cluster_->Dial("pool-a"));
  auto route = [&](const std::function<void(moe::v1::RouteRequest&)>& edit) {
    moe::v1::RouteRequest req;
    req.set_layer(0);
    req.mutable_hidden()->set_dtype(moe::v1::DTYPE_FLOAT32);
    req.mutable_hidden()->add_shape(2);
    req.mutable_hidden()->add_shape(192);
    req.mutable_hidden()->set_data(std::string(2 * 192 * 4, '\0'));
    edit(req);
    grpc::ClientContext ctx;
    Deadline(ctx, 10);
    moe::v1::RouteResponse resp;
    return router->Route(&ctx, req, &resp);
  };
  EXPECT_TRUE(route([](auto&) {}).ok());
  grpc::Status s = route([](auto& r) { r.mutable_hidden()->mutable_data()->pop_back(); });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("hidden.data"));
  s = route([](auto& r) { r.set_layer(7); });
  EXPECT_THAT(s.error_message(), HasSubstr("layer"));
  s = route([](auto& r) {
    r.mutable_hidden()->set_shape(1, 100);
    r.mutable_hidden()->set_data(std::string(2 * 100 * 4, '\0'));
  });
  EXPECT_THAT(s.error_message(), HasSubstr("hidden.shape"));
  s = route([](auto& r) {
    float nan = std::nanf("");
    r.mutable_hidden()->mutable_data()->replace(0, 4, reinterpret_cast<char*>(&nan), 4);
  });
  EXPECT_THAT(s.error_message(), HasSubstr("NaN"));
  s = route([](auto& r) { r.add_token_keys(1); });
  EXPECT_THAT(s.error_message(), HasSubstr("token_keys"));
  s = route([](auto& r) { r.mutable_hidden()->set_dtype(moe::v1::DTYPE_UNSPECIFIED); });
  EXPECT_THAT(s.error_message(), HasSubstr("hidden.dtype"));

  auto forward = [&](const std::function<void(moe::v1::ForwardRequest&)>& edit) {
    moe::v1::ForwardRequest req;
    req.set_layer(1);
    req.mutable_hidden()->set_dtype(moe::v1::DTYPE_FLOAT32);
    req.mutable_hidden()->add_shape(2);
    req.mutable_hidden()->add_shape(192);
    req.mutable_hidden()->set_data(std::string(2 * 192 * 4, '\0'));
    moe::v1::ExpertWork* w = req.add_work();
    w->set_expert(2);
    w->add_rows(0);
    w->add_rows(1);
    edit(req);
    grpc::ClientContext ctx;
    Deadline(ctx, 10);
    moe::v1::ForwardResponse resp;
    return pool->Forward(&ctx, req, &resp);
  };
  EXPECT_TRUE(forward([](auto&) {}).ok());
  s = forward([](auto& r) { r.mutable_work(0)->set_expert(6); });  // hosted by pool-b
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("layer 1 expert 6: not hosted by pool pool-a"));
  s = forward([](auto& r) { r.mutable_work(0)->set_expert(99); });
  EXPECT_THAT(s.error_message(), HasSubstr("work[0].expert"));
  s = forward([](auto& r) { r.mutable_work(0)->add_rows(5); });
  EXPECT_THAT(s.error_message(), HasSubstr("work[0].rows"));
  // The servers are still serving.
  auto stub = Orchestrator(*cluster_);
  EXPECT_TRUE(Stream(*stub, Request("Still fine", 3, 0.0f, 1)).status.ok());
}

TEST_F(ShippedClusterTest, ModelInfoDescribesTheModelAndTheBatch) {
  auto stub = Orchestrator(*cluster_);
  grpc::ClientContext ctx;
  Deadline(ctx, 10);
  moe::v1::ModelInfo info;
  ASSERT_TRUE(stub->GetModelInfo(&ctx, moe::v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.name(), "brown-moe");
  EXPECT_EQ(info.n_layers(), 3);
  EXPECT_EQ(info.n_experts(), 8);
  EXPECT_EQ(info.top_k(), 2);
  EXPECT_EQ(info.max_batch(), 2 * 32);  // default --lanes=2 x --max_batch=32
  EXPECT_GT(info.parameters(), info.active_parameters());
}

TEST_F(ShippedClusterTest, ReflectionListsAllServicesAndHealthSaysServing) {
  for (const std::string name : {"router", "pool-a", "orchestrator"}) {
    auto channel = cluster_->Dial(name);
    auto reflection = grpc::reflection::v1alpha::ServerReflection::NewStub(channel);
    grpc::ClientContext ctx;
    Deadline(ctx, 10);
    auto stream = reflection->ServerReflectionInfo(&ctx);
    grpc::reflection::v1alpha::ServerReflectionRequest req;
    req.set_list_services("");
    ASSERT_TRUE(stream->Write(req));
    grpc::reflection::v1alpha::ServerReflectionResponse resp;
    ASSERT_TRUE(stream->Read(&resp));
    stream->WritesDone();
    std::set<std::string> services;
    for (const auto& s : resp.list_services_response().service()) services.insert(s.name());
    const std::string own = name == "router"         ? "moe.v1.Router"
                            : name == "orchestrator" ? "moe.v1.Orchestrator"
                                                     : "moe.v1.ExpertPool";
    EXPECT_TRUE(services.count(own)) << name;
    EXPECT_TRUE(services.count("grpc.health.v1.Health")) << name;
    auto health = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext hctx;
    Deadline(hctx, 5);
    grpc::health::v1::HealthCheckResponse h;
    ASSERT_TRUE(health->Check(&hctx, grpc::health::v1::HealthCheckRequest(), &h).ok());
    EXPECT_EQ(h.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
}

// What grpcurl does with nothing but reflection: list the services, fetch the file that defines
// each (and the files it depends on), and resolve every method's request and response types.
// A service that reflection lists but cannot describe cannot be called by grpcurl.
TEST_F(ShippedClusterTest, ReflectionDescribesEveryListedServiceAndItsMethodTypes) {
  for (const std::string name : {"router", "pool-a", "orchestrator"}) {
    auto channel = cluster_->Dial(name);
    auto reflection = grpc::reflection::v1alpha::ServerReflection::NewStub(channel);
    grpc::ClientContext ctx;
    Deadline(ctx, 10);
    auto stream = reflection->ServerReflectionInfo(&ctx);
    auto ask = [&](const grpc::reflection::v1alpha::ServerReflectionRequest& req) {
      grpc::reflection::v1alpha::ServerReflectionResponse resp;
      EXPECT_TRUE(stream->Write(req));
      EXPECT_TRUE(stream->Read(&resp));
      return resp;
    };
    grpc::reflection::v1alpha::ServerReflectionRequest list;
    list.set_list_services("");
    const auto listed = ask(list);
    google::protobuf::SimpleDescriptorDatabase db;
    std::set<std::string> have;
    auto add_files = [&](const grpc::reflection::v1alpha::ServerReflectionResponse& r) {
      for (const std::string& bytes : r.file_descriptor_response().file_descriptor_proto()) {
        google::protobuf::FileDescriptorProto file;
        ASSERT_TRUE(file.ParseFromString(bytes));
        if (have.insert(file.name()).second) db.Add(file);
      }
    };
    for (const auto& service : listed.list_services_response().service()) {
      grpc::reflection::v1alpha::ServerReflectionRequest req;
      req.set_file_containing_symbol(service.name());
      const auto r = ask(req);
      EXPECT_FALSE(r.has_error_response())
          << name << ": " << service.name() << ": " << r.error_response().error_message();
      add_files(r);
    }
    // Dependencies the answers named but did not include, by file name (as grpcurl asks).
    for (bool more = true; more;) {
      more = false;
      std::vector<std::string> missing;
      for (const std::string& f : have) {
        google::protobuf::FileDescriptorProto file;
        ASSERT_TRUE(db.FindFileByName(f, &file));
        for (const std::string& dep : file.dependency()) {
          if (!have.count(dep)) missing.push_back(dep);
        }
      }
      for (const std::string& dep : missing) {
        grpc::reflection::v1alpha::ServerReflectionRequest req;
        req.set_file_by_filename(dep);
        const auto r = ask(req);
        EXPECT_FALSE(r.has_error_response()) << name << ": " << dep;
        const size_t before = have.size();
        add_files(r);
        more |= have.size() > before;
      }
    }
    stream->WritesDone();
    google::protobuf::DescriptorPool pool(&db);
    for (const auto& service : listed.list_services_response().service()) {
      const google::protobuf::ServiceDescriptor* d = pool.FindServiceByName(service.name());
      ASSERT_NE(d, nullptr) << name << ": cannot describe " << service.name();
      for (int m = 0; m < d->method_count(); ++m) {
        EXPECT_NE(d->method(m)->input_type(), nullptr) << d->method(m)->full_name();
        EXPECT_NE(d->method(m)->output_type(), nullptr) << d->method(m)->full_name();
      }
    }
  }
}

TEST_F(ShippedClusterTest, PlacementReportsHealthAndDeviceOfEveryPool) {
  auto stub = Orchestrator(*cluster_);
  moe::v1::Placement placement;
  for (int i = 0; i < 30; ++i) {  // devices are learned with the first health checks
    grpc::ClientContext ctx;
    Deadline(ctx, 5);
    placement.Clear();
    ASSERT_TRUE(stub->GetPlacement(&ctx, moe::v1::GetPlacementRequest(), &placement).ok());
    if (placement.pools_size() == 2 && !placement.pools(0).device().empty() &&
        !placement.pools(1).device().empty()) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(placement.pools_size(), 2);
  // The suite's earlier requests may have moved experts (the router rebalances on load): each
  // layer's 8 experts are hosted somewhere, whichever pool that is.
  std::vector<std::set<int>> hosted(3);
  for (const auto& p : placement.pools()) {
    EXPECT_TRUE(p.healthy()) << p.name();
    EXPECT_EQ(p.device(), "cpu") << p.name();
    ASSERT_EQ(p.hosts_size(), 3);
    for (const auto& h : p.hosts()) {
      ASSERT_TRUE(h.layer() >= 0 && h.layer() < 3) << p.name();
      hosted[h.layer()].insert(h.experts().begin(), h.experts().end());
    }
  }
  for (int l = 0; l < 3; ++l) EXPECT_EQ(hosted[l].size(), 8u) << "layer " << l;
}

// Hands out a WatchRouting stream's events one at a time (the stream carries batches).
class EventReader {
 public:
  explicit EventReader(std::unique_ptr<grpc::ClientReader<moe::v1::WatchRoutingResponse>> reader)
      : reader_(std::move(reader)) {}
  bool Read(moe::v1::RoutingEvent* event) {
    while (next_ >= batch_.events_size()) {
      if (!reader_->Read(&batch_)) return false;
      next_ = 0;
      dropped_ = batch_.dropped();
    }
    *event = batch_.events(next_++);
    return true;
  }
  uint64_t dropped() const { return dropped_; }
  grpc::Status Finish() { return reader_->Finish(); }

 private:
  std::unique_ptr<grpc::ClientReader<moe::v1::WatchRoutingResponse>> reader_;
  moe::v1::WatchRoutingResponse batch_;
  int next_ = 0;
  uint64_t dropped_ = 0;
};

TEST_F(ShippedClusterTest, RoutingEventsMatchTheEmbeddedRouting) {
  auto stub = Orchestrator(*cluster_);
  moe::v1::WatchRoutingRequest watch;
  grpc::ClientContext wctx;
  Deadline(wctx, 60);
  EventReader events(stub->WatchRouting(&wctx, watch));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // subscribed before generating
  moe::v1::GenerateRequest req = Request("The jury said", 10, 0.0f, 3);
  StreamResult remote = Stream(*stub, req);
  ASSERT_TRUE(remote.status.ok()) << remote.status.error_message();
  std::map<int, std::vector<std::vector<int>>> seen;
  std::string request_id;
  moe::v1::RoutingEvent ev;
  while (events.Read(&ev)) {
    if (ev.has_started()) request_id = ev.started().request_id();
    if (ev.has_token() && ev.token().request_id() == request_id) {
      auto& layers = seen[ev.token().position()];
      layers.resize(3);
      std::vector<int> ids;
      for (const auto& e : ev.token().routing().experts()) ids.push_back(e.id());
      layers[ev.token().routing().layer()] = ids;
    }
    if (ev.has_finished() && ev.finished().request_id() == request_id) break;
  }
  wctx.TryCancel();
  StreamResult local = Embedded(Shipped(), req);
  ASSERT_EQ(seen.size(), local.routing.size())
      << "request " << (request_id.empty() ? "(no started event seen)" : request_id);
  for (const auto& [pos, layers] : local.routing) {
    for (size_t l = 0; l < layers.size(); ++l)
      EXPECT_EQ(seen[pos][l], layers[l]) << pos << " " << l;
  }
}

TEST_F(ShippedClusterTest, WatchFiltersByLayerAndRequestAndRefusesBadFilters) {
  auto stub = Orchestrator(*cluster_);
  moe::v1::WatchRoutingRequest watch;
  watch.add_layers(1);
  watch.set_request_id("req-does-not-exist");
  grpc::ClientContext none_ctx;
  Deadline(none_ctx, 5);
  EventReader none(stub->WatchRouting(&none_ctx, watch));
  watch.clear_request_id();
  grpc::ClientContext ctx;
  Deadline(ctx, 30);
  EventReader layer1(stub->WatchRouting(&ctx, watch));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const grpc::Status filtered = Stream(*stub, Request("Filters", 5, 0.0f, 1)).status;
  ASSERT_TRUE(filtered.ok()) << filtered.error_message();
  moe::v1::RoutingEvent ev;
  int tokens = 0;
  while (layer1.Read(&ev)) {
    if (ev.has_token()) {
      EXPECT_EQ(ev.token().routing().layer(), 1);
      ++tokens;
    }
    if (ev.has_finished()) break;
  }
  EXPECT_GT(tokens, 5);
  ctx.TryCancel();
  none_ctx.TryCancel();
  EXPECT_FALSE(none.Read(&ev) && ev.has_token());

  moe::v1::WatchRoutingRequest bad;
  bad.set_sample_rate(2);
  grpc::ClientContext bctx;
  Deadline(bctx, 5);
  EventReader b(stub->WatchRouting(&bctx, bad));
  while (b.Read(&ev)) {
  }
  grpc::Status s = b.Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("sample_rate"));
}

// WatchRouting is served raw (its messages are assembled from pre-serialized events), so the
// service parses the request itself: bytes that are not a WatchRoutingRequest must get a clear
// INVALID_ARGUMENT, and the stream must end.
TEST_F(ShippedClusterTest, WatchRefusesAMalformedRequest) {
  auto channel = cluster_->Dial("orchestrator");
  grpc::GenericStub generic(channel);
  grpc::ClientContext ctx;
  Deadline(ctx, 10);
  grpc::CompletionQueue cq;
  auto call = generic.PrepareCall(&ctx, "/moe.v1.Orchestrator/WatchRouting", &cq);
  void* tag = nullptr;
  bool ok = false;
  auto step = [&](intptr_t want) {
    ASSERT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), want);
  };
  call->StartCall(reinterpret_cast<void*>(1));
  step(1);
  grpc::Slice garbage(std::string("\xff\xff\xff\xff", 4));  // an unterminated varint
  grpc::ByteBuffer request(&garbage, 1);
  call->WriteLast(request, grpc::WriteOptions(), reinterpret_cast<void*>(2));
  step(2);
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(3));
  step(3);
  EXPECT_FALSE(ok) << "no message expected";
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  step(4);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("WatchRoutingRequest"));
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

// GET http://127.0.0.1:port/metrics, as a scraper would.
std::string Scrape(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  close(fd);
  return out;
}

// Sum of moe_expert_tokens_routed_total per (layer, expert).
std::map<std::pair<int, int>, double> RoutedCounters(const std::string& text) {
  std::map<std::pair<int, int>, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    int e, l;
    double v;
    if (std::sscanf(line.c_str(), "moe_expert_tokens_routed_total{expert=\"%d\",layer=\"%d\"} %lf",
                    &e, &l, &v) == 3) {
      out[{l, e}] = v;
    }
  }
  return out;
}

TEST_F(ShippedClusterTest, RouterExpertCountersEqualTheEventsTokenCounts) {
  auto stub = Orchestrator(*cluster_);
  const auto before = RoutedCounters(Scrape(cluster_->metrics_port("router")));
  ASSERT_EQ(before.size(), 3u * 8u) << "every (layer, expert) is exported from the start";
  moe::v1::WatchRoutingRequest watch;
  grpc::ClientContext wctx;
  Deadline(wctx, 60);
  EventReader events(stub->WatchRouting(&wctx, watch));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::set<std::string> ids;
  for (uint64_t seed : {1, 2, 3}) {
    ASSERT_TRUE(Stream(*stub, Request("Counting tokens", 12, 0.9f, seed)).status.ok());
  }
  std::map<std::pair<int, int>, double> from_events;
  int finished = 0;
  moe::v1::RoutingEvent ev;
  while (finished < 3 && events.Read(&ev)) {
    if (ev.has_finished()) ++finished;
    if (!ev.has_token()) continue;
    for (const auto& e : ev.token().routing().experts()) {
      from_events[{ev.token().routing().layer(), e.expert()}] += 1;
    }
  }
  wctx.TryCancel();
  EXPECT_EQ(events.dropped(), 0u);
  const auto after = RoutedCounters(Scrape(cluster_->metrics_port("router")));
  double total = 0;
  for (const auto& [key, v] : after) {
    const double delta = v - before.at(key);
    EXPECT_EQ(delta, from_events[key]) << "layer " << key.first << " expert " << key.second;
    total += delta;
  }
  // 3 requests x (6 prompt + 12 generated tokens) x 3 layers x top-2.
  EXPECT_EQ(total, 3 * (6 + 12) * 3 * 2);
}

// moe_internal_links_total{peer, transport} from an orchestrator's /metrics page, as
// "router/frames" -> count.
std::map<std::string, double> Links(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    char peer[16], transport[16];
    double v;
    if (std::sscanf(line.c_str(),
                    "moe_internal_links_total{peer=\"%15[a-z]\",transport=\"%15[a-z]\"} %lf", peer,
                    transport, &v) == 3) {
      out[absl::StrCat(peer, "/", transport)] = v;
    }
  }
  return out;
}

TEST_F(ShippedClusterTest, DecodeMessagesTravelAsFramesUnlessTlsIsOn) {
  auto stub = Orchestrator(*cluster_);
  ASSERT_TRUE(Stream(*stub, Request("Frames", 4, 0.0f, 1)).status.ok());
  std::map<std::string, double> links = Links(Scrape(cluster_->metrics_port("orchestrator")));
  ASSERT_EQ(links.size(), 4u) << "router and pool, frames and grpc, exported from the start";
  if (ClusterOptions::TlsFromEnvironment()) {  // frames are plaintext: gRPC streams only
    EXPECT_EQ(links["router/frames"] + links["pool/frames"], 0);
    EXPECT_GT(links["router/grpc"], 0);
    EXPECT_GT(links["pool/grpc"], 0);
  } else {
    EXPECT_GT(links["router/frames"], 0);
    EXPECT_GT(links["pool/frames"], 0);
    EXPECT_EQ(links["router/grpc"] + links["pool/grpc"], 0);
  }
}

// Tiny random model with micro-experts and a shared expert; pool-c replicates pool-b.
class FailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = TinyConfigFile();
    source_.random_init_config = config_;
    source_.seed = 9;
    source_.tokenizer = Cluster::SourceDir() + "/models/brown-moe/tokenizer.model";
  }
  ClusterOptions Options(bool replica) {
    ClusterOptions o;
    o.model_args = {"--random_init=" + config_, "--init_seed=9",
                    "--tokenizer=" + source_.tokenizer};
    o.pools = {{"pool-a", "0-1", "all"}, {"pool-b", "2-3", ""}};
    if (replica) o.pools.push_back({"pool-c", "2-3", ""});
    return o;
  }
  // Each seed's generation (greedy for the first, sampled after) streams the embedded model's
  // tokens and routing, prompt included.
  void ExpectEmbeddedTokensAndRouting(Cluster& cluster, const std::string& prompt, int tokens,
                                      const std::vector<uint64_t>& seeds) {
    auto stub = Orchestrator(cluster);
    for (uint64_t seed : seeds) {
      moe::v1::GenerateRequest req =
          Request(prompt, tokens, seed == seeds.front() ? 0.0f : 1.0f, seed);
      req.set_echo_prompt(true);
      StreamResult remote = Stream(*stub, req);
      ASSERT_TRUE(remote.status.ok()) << remote.status.error_message();
      StreamResult local = Embedded(source_, req);
      EXPECT_EQ(remote.tokens, local.tokens) << "seed " << seed;
      EXPECT_EQ(remote.routing, local.routing) << "seed " << seed;
    }
  }
  std::string config_;
  ModelSource source_;
};

TEST_F(FailoverTest, PoolDiesWithReplicaKeepsSameTokens) {
  Cluster cluster(Options(/*replica=*/true));
  MOE_ASSERT_OK(cluster.Start());
  auto stub = Orchestrator(cluster);
  moe::v1::GenerateRequest req = Request("Once upon a time", 40, 0.9f, 5);
  StreamResult remote = Stream(*stub, req, [&](int n) {
    if (n == 5) cluster.Kill("pool-b");
  });
  ASSERT_TRUE(remote.status.ok()) << remote.status.error_message();
  EXPECT_EQ(remote.tokens, Embedded(source_, req).tokens);
  EXPECT_THAT(cluster.Log("orchestrator"), HasSubstr("pool_failed"));
}

TEST_F(FailoverTest, PoolDiesWithoutReplicaFailsFastThenRejoins) {
  Cluster cluster(Options(/*replica=*/false));
  MOE_ASSERT_OK(cluster.Start());
  auto stub = Orchestrator(cluster);
  cluster.Kill("pool-b");
  const auto start = std::chrono::steady_clock::now();
  StreamResult r = Stream(*stub, Request("Once upon a time", 20, 0.0f, 1));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(r.status.error_message(), HasSubstr("expert"));
  EXPECT_THAT(r.status.error_message(), HasSubstr("pool-b"));
  EXPECT_LT(seconds, 5.0);
  // A restarted pool rejoins once the router's health check sees it.
  MOE_ASSERT_OK(cluster.Restart("pool-b"));
  grpc::Status last;
  for (int i = 0; i < 30; ++i) {
    StreamResult again = Stream(*stub, Request("Once upon a time", 8, 0.0f, 1));
    last = again.status;
    if (last.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(last.ok()) << last.error_message();
}

// A pool that hangs (SIGSTOP: its connections stay open, nothing answers) is a failure once a
// message to it misses its deadline; with a replica the request goes on with the same tokens.
TEST_F(FailoverTest, PoolHangsWithReplicaKeepsSameTokens) {
  ClusterOptions o = Options(/*replica=*/true);
  o.orchestrator_args = {"--forward_deadline_ms=500"};
  Cluster cluster(o);
  MOE_ASSERT_OK(cluster.Start());
  auto stub = Orchestrator(cluster);
  moe::v1::GenerateRequest req = Request("Once upon a time", 40, 0.9f, 5);
  StreamResult remote = Stream(*stub, req, [&](int n) {
    if (n == 5) cluster.Signal("pool-b", SIGSTOP);
  });
  cluster.Signal("pool-b", SIGCONT);
  ASSERT_TRUE(remote.status.ok()) << remote.status.error_message() << "\n"
                                  << cluster.Log("orchestrator");
  EXPECT_EQ(remote.tokens, Embedded(source_, req).tokens);
}

TEST_F(FailoverTest, PoolHangsWithoutReplicaFailsAfterTheMessageDeadline) {
  ClusterOptions o = Options(/*replica=*/false);
  o.orchestrator_args = {"--forward_deadline_ms=500"};
  Cluster cluster(o);
  MOE_ASSERT_OK(cluster.Start());
  auto stub = Orchestrator(cluster);
  ASSERT_TRUE(Stream(*stub, Request("Once upon a time", 4, 0.0f, 1)).status.ok());  // streams open
  cluster.Signal("pool-b", SIGSTOP);
  const auto start = std::chrono::steady_clock::now();
  StreamResult r = Stream(*stub, Request("Once upon a time", 20, 0.0f, 1));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  cluster.Signal("pool-b", SIGCONT);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(r.status.error_message(), HasSubstr("pool-b"));
  EXPECT_LT(seconds, 5.0);
  // The orchestrator gave up on the message itself (not only on the router's health check).
  EXPECT_THAT(cluster.Log("orchestrator"), HasSubstr("no answer within the message deadline"));
}

TEST_F(FailoverTest, DistributedMicroAndSharedExpertsEqualEmbedded) {
  Cluster cluster(Options(/*replica=*/true));
  MOE_ASSERT_OK(cluster.Start());
  ExpectEmbeddedTokensAndRouting(cluster, "A tiny model", 20, {1, 2, 3});
}

// A router without frames beside pools with them: each layer's wait covers a gRPC stream and
// frame connections at once, and the tokens stay the embedded model's. Twice: a router that
// offers none, and one whose frames port cannot be reached (a firewall, a Service without the
// port): the orchestrator falls back to the stream instead of failing messages.
TEST_F(FailoverTest, ARouterWithoutFramesBesidePoolsWithFramesGivesTheSameTokens) {
  for (const std::string router_flag : {"--frames_listen=off", "--frames_advertise=:1"}) {
    SCOPED_TRACE(router_flag);
    ClusterOptions o = Options(/*replica=*/false);
    o.router_args = {router_flag};
    o.metrics = true;
    Cluster cluster(o);
    MOE_ASSERT_OK(cluster.Start());
    ExpectEmbeddedTokensAndRouting(cluster, "Mixed links", 16, {1, 2});
    std::map<std::string, double> links = Links(Scrape(cluster.metrics_port("orchestrator")));
    EXPECT_EQ(links["router/frames"], 0);
    EXPECT_GT(links["router/grpc"], 0);
    if (!o.tls) {
      EXPECT_GT(links["pool/frames"], 0);
      EXPECT_EQ(links["pool/grpc"], 0);
    }
  }
}

// Mutual TLS: every service serves only clients with a certificate signed by the cluster's CA,
// and says why it refuses the others; the services' own hops run over mTLS (a generation works).
TEST(MutualTlsTest, EveryServiceRefusesPlaintextUncertifiedAndForeignClients) {
  ClusterOptions o;
  o.model_args = {"--random_init=" + TinyConfigFile(), "--init_seed=3", "--threads=1",
                  "--tokenizer=" + Cluster::SourceDir() + "/models/brown-moe/tokenizer.model"};
  o.pools = {{"pool-a", "all", "all"}};
  o.tls = true;
  Cluster cluster(o);
  MOE_ASSERT_OK(cluster.Start());

  // The certified client: served, through every hop.
  {
    auto stub = Orchestrator(cluster);
    grpc::ClientContext ctx;
    Deadline(ctx, 60);
    moe::v1::CompleteResponse resp;
    const grpc::Status st = stub->Complete(&ctx, Request("The jury", 4, 0, 1), &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(resp.token_ids_size(), 4);
  }

  // A CA and client certificate of another cluster, made like the real ones.
  const std::string other = cluster.tls_dir() + "-other";
  std::string out;
  ASSERT_EQ(Cluster::RunToCompletion(
                {Cluster::SourceDir() + "/deploy/tls/make_certs.sh", other, "client"}, &out),
            0)
      << out;
  absl::StatusOr<TlsConfig> foreign =
      LoadTls(other + "/client.pem", other + "/client.key", cluster.tls_dir() + "/ca.pem");
  ASSERT_TRUE(foreign.ok()) << foreign.status();
  grpc::SslCredentialsOptions no_cert;
  {
    std::ifstream ca(cluster.tls_dir() + "/ca.pem");
    no_cert.pem_root_certs.assign(std::istreambuf_iterator<char>(ca), {});
  }
  const std::vector<std::pair<std::string, std::shared_ptr<grpc::ChannelCredentials>>> clients = {
      {"plaintext", grpc::InsecureChannelCredentials()},
      {"no certificate", grpc::SslCredentials(no_cert)},
      {"another CA's certificate", ChannelCredentials(*foreign)},
  };
  for (const std::string name : {"router", "pool-a", "orchestrator"}) {
    for (const auto& [what, credentials] : clients) {
      auto health = grpc::health::v1::Health::NewStub(
          grpc::CreateChannel(cluster.address(name), credentials));
      grpc::ClientContext ctx;
      Deadline(ctx, 5);
      grpc::health::v1::HealthCheckResponse resp;
      const grpc::Status st = health->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp);
      EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << name << ", " << what;
      EXPECT_FALSE(st.error_message().empty()) << name << ", " << what;
      std::printf("%s refuses a client with %s: %s\n", name.c_str(), what.c_str(),
                  st.error_message().c_str());
    }
  }

  // moectl: served with the client's flags; without them, a non-zero exit saying what to give.
  std::vector<std::string> argv = {Cluster::BuildDir() + "/clients/moectl/moectl", "info",
                                   "--target=" + cluster.address("orchestrator")};
  EXPECT_NE(Cluster::RunToCompletion(argv, &out), 0);
  EXPECT_THAT(out, HasSubstr("--tls_ca")) << out;
  for (const std::string& f : cluster.ClientTlsFlags()) argv.push_back(f);
  EXPECT_EQ(Cluster::RunToCompletion(argv, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("\"n_layers\": 2"));
  // Half a set of flags is refused before any call, naming what is missing.
  EXPECT_EQ(Cluster::RunToCompletion(
                {argv[0], "info", "--target=" + cluster.address("router"), argv[3]}, &out),
            1);
  EXPECT_THAT(out, HasSubstr("missing: --tls_key --tls_ca"));
}

TEST(PlacementStartupTest, InvalidPlacementIsRefusedAtStartWithItsName) {
  const std::string dir = std::filesystem::temp_directory_path();
  const std::string bad = dir + "/moe_bad_cluster.json";
  std::ofstream(bad) << R"({"router": {"address": "127.0.0.1:1"}, "pools": [
      {"name": "a", "address": "127.0.0.1:2", "hosts": [{"layers": "all", "experts": "0-6"}]}]})";
  const std::string model = "--model=" + Cluster::SourceDir() + "/models/brown-moe";
  std::string out;
  EXPECT_EQ(Cluster::RunToCompletion({Cluster::BuildDir() + "/services/router/moe-router",
                                      "--listen=127.0.0.1:0", "--cluster=" + bad, model},
                                     &out),
            1);
  EXPECT_THAT(out, HasSubstr("layer 0 expert 7: hosted by no pool"));
  std::ofstream(bad) << R"({"router": {"address": "127.0.0.1:1"}, "pools": [
      {"name": "a", "address": "127.0.0.1:2", "hosts": [{"layers": "all", "experts": "all"}]},
      {"name": "b", "address": "127.0.0.1:2", "hosts": []}]})";
  EXPECT_EQ(Cluster::RunToCompletion({Cluster::BuildDir() + "/services/router/moe-router",
                                      "--listen=127.0.0.1:0", "--cluster=" + bad, model},
                                     &out),
            1);
  EXPECT_THAT(out, HasSubstr("already used by pool \\\"a\\\""));
  EXPECT_EQ(Cluster::RunToCompletion(
                {Cluster::BuildDir() + "/services/expert_pool/moe-expert-pool", "--pool=zzz",
                 "--listen=127.0.0.1:0",
                 "--cluster=" + Cluster::SourceDir() + "/deploy/local/cluster.json", model},
                &out),
            1);
  EXPECT_THAT(out, HasSubstr("not in the cluster file"));
}

}  // namespace
}  // namespace moe
