// Throughput of the orchestrator's OpenAI-compatible HTTP API against gRPC Generate, on one real
// cluster of the shipped model (router, two pools, orchestrator as processes on loopback). Each
// round runs the same greedy requests through every path with C concurrent clients, each client
// sending `--requests` requests one after another on its own connection: gRPC Generate (a stream
// of messages),
// POST /v1/completions with "stream": true (server-sent events) and without (one JSON answer).
// The order of the paths turns every round, and the ratio is taken per round. Beside throughput
// it reports the orchestrator's CPU time per token on each path (from /proc): the API's own cost,
// which a machine shared with other work shows far more steadily than wall-clock throughput.
//   api_bench --model=models/brown-moe --clients=1,32 --rounds=5
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "moe/v1/orchestrator.grpc.pb.h"
#include "tests/integration/cluster.h"

ABSL_FLAG(std::string, model, "models/brown-moe", "checkpoint");
ABSL_FLAG(std::string, clients, "1,32", "concurrent clients, one measurement each");
ABSL_FLAG(int, requests, 2, "requests per client per path and round");
ABSL_FLAG(int, tokens, 64, "max_tokens of each request (greedy)");
ABSL_FLAG(int, rounds, 5, "rounds; each runs every path once");
ABSL_FLAG(std::string, prompt, "The jury said it did find that", "prompt");

namespace {

enum class Path { kGrpc, kHttpStream, kHttpWhole };
const char* Name(Path p) {
  return p == Path::kGrpc ? "grpc" : p == Path::kHttpStream ? "http_stream" : "http_whole";
}

// A kept-alive HTTP/1.1 connection, as a client library holds one.
class HttpClient {
 public:
  explicit HttpClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) std::exit(1);
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~HttpClient() { close(fd_); }

  // Generated tokens of one completion, or -1.
  int Complete(const std::string& body, bool stream) {
    const std::string req = absl::StrCat(
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
        "\r\nContent-Length: ",
        body.size(), "\r\n\r\n", body);
    if (send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      return -1;
    }
    size_t head_end;
    while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Read()) return -1;
    }
    const std::string head = buf_.substr(0, head_end);
    buf_.erase(0, head_end + 4);
    if (head.compare(0, 12, "HTTP/1.1 200") != 0) return -1;
    if (stream) {
      // Chunks until the last (empty) one; each event is a token but [DONE].
      int events = 0;
      for (;;) {
        size_t line;
        while ((line = buf_.find("\r\n")) == std::string::npos) {
          if (!Read()) return -1;
        }
        size_t size = 0;
        if (!absl::SimpleHexAtoi(buf_.substr(0, line), &size)) return -1;
        while (buf_.size() < line + 2 + size + 2) {
          if (!Read()) return -1;
        }
        const std::string chunk = buf_.substr(line + 2, size);
        buf_.erase(0, line + 2 + size + 2);
        if (size == 0) return events;
        if (chunk.find("\"text_completion\"") != std::string::npos) ++events;
      }
    }
    const size_t cl = head.find("Content-Length: ");
    size_t length = 0;
    if (cl == std::string::npos ||
        !absl::SimpleAtoi(head.substr(cl + 16, head.find("\r\n", cl) - cl - 16), &length)) {
      return -1;
    }
    while (buf_.size() < length) {
      if (!Read()) return -1;
    }
    const std::string answer = buf_.substr(0, length);
    buf_.erase(0, length);
    const size_t at = answer.find("\"completion_tokens\":");
    int tokens = -1;
    if (at != std::string::npos) {
      (void)absl::SimpleAtoi(answer.substr(at + 20, answer.find_first_of(",}", at) - at - 20),
                             &tokens);
    }
    return tokens;
  }

 private:
  bool Read() {
    char tmp[16384];
    const ssize_t n = read(fd_, tmp, sizeof(tmp));
    if (n <= 0) return false;
    buf_.append(tmp, n);
    return true;
  }
  int fd_;
  std::string buf_;
};

// The pid of the orchestrator started for `cluster_file` (its command line names the file).
int FindOrchestrator(const std::string& cluster_file) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    std::ifstream in(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmdline.find("moe-orchestrator") != std::string::npos &&
        cmdline.find("--cluster=" + cluster_file) != std::string::npos) {
      return pid;
    }
  }
  return 0;
}

// User + system CPU seconds of process `pid` so far.
double CpuSeconds(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The fields after the command name (which may hold spaces) start after the last ')'.
  std::vector<std::string> f = absl::StrSplit(stat.substr(stat.rfind(')') + 2), ' ');
  double utime = 0, stime = 0;
  if (f.size() < 13 || !absl::SimpleAtod(f[11], &utime) || !absl::SimpleAtod(f[12], &stime)) {
    return 0;
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct Measure {
  double tokens_per_s = 0;
  double orchestrator_us_per_token = 0;  // the orchestrator's CPU time (user + system)
};

// `clients` clients sending `requests` requests each through `path`.
Measure Run(Path path, int clients, const std::string& target, int http_port,
            int orchestrator_pid) {
  const int requests = absl::GetFlag(FLAGS_requests);
  const int max_tokens = absl::GetFlag(FLAGS_tokens);
  const std::string prompt = absl::GetFlag(FLAGS_prompt);
  const std::string body = absl::StrCat("{\"model\": \"brown-moe\", \"prompt\": \"", prompt,
                                        "\", \"max_tokens\": ", max_tokens, ", \"temperature\": 0",
                                        path == Path::kHttpStream ? ", \"stream\": true}" : "}");
  std::atomic<int64_t> tokens{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  const double cpu_before = CpuSeconds(orchestrator_pid);
  const absl::Time start = absl::Now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      if (path == Path::kGrpc) {
        // Its own connection, as each HTTP client has (and as separate users have).
        grpc::ChannelArguments args;
        args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
        auto stub = moe::v1::Orchestrator::NewStub(
            grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
        for (int r = 0; r < requests; ++r) {
          moe::v1::GenerateRequest req;
          req.set_prompt(prompt);
          req.set_max_tokens(max_tokens);
          req.set_temperature(0);
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(600));
          auto reader = stub->Generate(&ctx, req);
          moe::v1::GenerateResponse msg;
          while (reader->Read(&msg)) tokens += !msg.is_prompt();
          if (!reader->Finish().ok()) failed = true;
        }
      } else {
        HttpClient http(http_port);
        for (int r = 0; r < requests; ++r) {
          const int n = http.Complete(body, path == Path::kHttpStream);
          if (n < 0) failed = true;
          tokens += std::max(n, 0);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const double cpu = CpuSeconds(orchestrator_pid) - cpu_before;
  if (failed) {
    std::fprintf(stderr, "api_bench: a %s request failed\n", Name(path));
    std::exit(1);
  }
  return {static_cast<double>(tokens) / seconds, cpu * 1e6 / static_cast<double>(tokens)};
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int http_port = moe::testing::FreePorts(1)[0];
  moe::testing::ClusterOptions options = moe::testing::TwoPoolOptions(absl::GetFlag(FLAGS_model));
  options.orchestrator_args.push_back(absl::StrCat("--http_listen=127.0.0.1:", http_port));
  moe::testing::Cluster cluster(options);
  if (absl::Status s = cluster.Start(); !s.ok()) {
    std::fprintf(stderr, "api_bench: %s\n", s.ToString().c_str());
    return 1;
  }
  const std::string target = cluster.address("orchestrator");
  const int pid = FindOrchestrator(cluster.cluster_file());
  if (pid == 0) {
    std::fprintf(stderr, "api_bench: cannot find the orchestrator's process\n");
    return 1;
  }
  const Path paths[] = {Path::kGrpc, Path::kHttpStream, Path::kHttpWhole};
  std::printf(
      "| clients | round | grpc tok/s | http_stream tok/s | http_whole tok/s | stream/grpc |"
      " whole/grpc | orchestrator CPU us/token grpc, stream, whole |\n"
      "|---|---|---|---|---|---|---|---|\n");
  for (absl::string_view c : absl::StrSplit(absl::GetFlag(FLAGS_clients), ',')) {
    int clients = 0;
    if (!absl::SimpleAtoi(c, &clients) || clients < 1) {
      std::fprintf(stderr, "api_bench: --clients: not a positive number: %s\n",
                   std::string(c).c_str());
      return 2;
    }
    for (Path p : paths) Run(p, clients, target, http_port, pid);  // warm-up
    std::vector<double> stream_ratio, whole_ratio, cpu[3];
    for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
      Measure m[3];
      for (int k = 0; k < 3; ++k) {
        const int i = (round + k) % 3;  // each path goes first in turn
        m[i] = Run(paths[i], clients, target, http_port, pid);
        cpu[i].push_back(m[i].orchestrator_us_per_token);
      }
      stream_ratio.push_back(m[1].tokens_per_s / m[0].tokens_per_s);
      whole_ratio.push_back(m[2].tokens_per_s / m[0].tokens_per_s);
      std::printf("| %d | %d | %.0f | %.0f | %.0f | %.3f | %.3f | %.0f, %.0f, %.0f |\n", clients,
                  round + 1, m[0].tokens_per_s, m[1].tokens_per_s, m[2].tokens_per_s,
                  stream_ratio.back(), whole_ratio.back(), m[0].orchestrator_us_per_token,
                  m[1].orchestrator_us_per_token, m[2].orchestrator_us_per_token);
      std::fflush(stdout);
    }
    std::printf("| %d | median | | | | %.3f | %.3f | %.0f, %.0f, %.0f |\n", clients,
                Median(stream_ratio), Median(whole_ratio), Median(cpu[0]), Median(cpu[1]),
                Median(cpu[2]));
  }
  return 0;
}
