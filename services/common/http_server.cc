#include "services/common/http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "services/common/host_port.h"

namespace moe {
namespace {

constexpr size_t kMaxHeadBytes = 16 << 10;

// Appends what the socket has, waiting up to `timeout`. False on end of stream, error or timeout.
bool ReadSome(int fd, std::string& buf, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    const int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1000)));
    if (r < 0 && errno != EINTR) return false;
    if (r <= 0) continue;
    char tmp[16384];
    const ssize_t n = read(fd, tmp, sizeof(tmp));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
    return true;
  }
}

bool SendAllTo(int fd, absl::string_view data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // closed, or SO_SNDTIMEO passed
    sent += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

absl::string_view HttpReason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

const std::string* HttpRequest::Header(absl::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

bool HttpResponse::SendAll(absl::string_view data) {
  if (failed_) return false;
  if (!SendAllTo(fd_, data)) failed_ = true;
  return !failed_;
}

bool HttpResponse::Send(int status, absl::string_view content_type, absl::string_view body) {
  if (started_) return false;
  started_ = true;
  std::string out =
      absl::StrCat("HTTP/1.1 ", status, " ", HttpReason(status), "\r\nContent-Type: ", content_type,
                   "\r\nContent-Length: ", body.size(),
                   "\r\nConnection: ", keep_alive_ ? "keep-alive" : "close", "\r\n\r\n");
  out.append(body.data(), body.size());
  return SendAll(out);
}

bool HttpResponse::StartStream(int status, absl::string_view content_type) {
  if (started_) return false;
  started_ = chunked_ = true;
  return SendAll(absl::StrCat("HTTP/1.1 ", status, " ", HttpReason(status),
                              "\r\nContent-Type: ", content_type,
                              "\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
                              "Connection: ",
                              keep_alive_ ? "keep-alive" : "close", "\r\n\r\n"));
}

bool HttpResponse::Write(absl::string_view data) {
  if (!chunked_) return false;
  if (data.empty()) return !failed_;  // an empty chunk would end the body
  return SendAll(absl::StrCat(absl::Hex(data.size()), "\r\n", data, "\r\n"));
}

bool HttpResponse::End() {
  if (!chunked_) return false;
  chunked_ = false;
  return SendAll("0\r\n\r\n");
}

bool HttpResponse::ClientGone() const {
  if (failed_) return true;
  pollfd p{fd_, POLLRDHUP, 0};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& address,
                                                              absl::string_view flag,
                                                              HttpServerOptions options,
                                                              HttpHandler handler) {
  absl::StatusOr<HostPort> hp = ParseHostPort(address, flag);
  if (!hp.ok()) return hp.status();
  const std::string host = hp->host.empty() ? "0.0.0.0" : hp->host;
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(flag, "=", address, ": cannot resolve ", host));
  }
  sockaddr_in addr = *reinterpret_cast<sockaddr_in*>(res->ai_addr);
  freeaddrinfo(res);
  addr.sin_port = htons(static_cast<uint16_t>(hp->port));
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 128) != 0) {
    const std::string err = std::strerror(errno);
    close(fd);
    return absl::UnavailableError(absl::StrCat(flag, "=", address, ": ", err));
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return std::unique_ptr<HttpServer>(
      new HttpServer(fd, ntohs(addr.sin_port), std::move(options), std::move(handler)));
}

HttpServer::HttpServer(int fd, int port, HttpServerOptions options, HttpHandler handler)
    : listen_fd_(fd), port_(port), options_(std::move(options)), handler_(std::move(handler)) {
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

HttpServer::~HttpServer() {
  stop_ = true;
  accept_thread_.join();
  close(listen_fd_);
  std::list<Connection> left;
  {
    absl::MutexLock lock(&mu_);
    // Wakes handlers (ClientGone) and blocked reads and writes.
    for (Connection& c : connections_) {
      if (c.fd >= 0) shutdown(c.fd, SHUT_RDWR);
    }
    left.splice(left.end(), connections_);
  }
  for (Connection& c : left) c.thread.join();
}

void HttpServer::ReapFinished() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    if (it->done) {
      it->thread.join();
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
}

void HttpServer::AcceptLoop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    const int one = 1;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // events go out at once
    const int64_t ms = absl::ToInt64Milliseconds(options_.write_timeout);
    timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
    setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    absl::MutexLock lock(&mu_);
    ReapFinished();
    if (static_cast<int>(connections_.size()) >= options_.max_connections) {
      SendError(client, 503,
                absl::StrCat("server busy: ", options_.max_connections,
                             " connections open, at most that many at once; retry later"));
      close(client);
      continue;
    }
    Connection& c = connections_.emplace_back();
    c.fd = client;
    c.thread = std::thread([this, &c] { Serve(&c); });
  }
}

void HttpServer::SendError(int fd, int status, absl::string_view message) {
  std::string type = "text/plain; charset=utf-8", body = absl::StrCat(message, "\n");
  if (options_.error_body) std::tie(type, body) = options_.error_body(status, message);
  SendAllTo(
      fd, absl::StrCat("HTTP/1.1 ", status, " ", HttpReason(status), "\r\nContent-Type: ", type,
                       "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body));
}

void HttpServer::Serve(Connection* conn) {
  const int fd = conn->fd;
  std::string buf;
  while (!stop_) {
    size_t head_end;
    while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (buf.size() > kMaxHeadBytes) {
        SendError(fd, 431, absl::StrCat("request head over ", kMaxHeadBytes, " bytes"));
        head_end = std::string::npos;
        break;
      }
      if (!ReadSome(fd, buf, buf.empty() ? options_.idle_timeout : options_.read_timeout)) break;
    }
    if (head_end == std::string::npos) break;
    HttpRequest req;
    std::vector<absl::string_view> lines =
        absl::StrSplit(absl::string_view(buf).substr(0, head_end), "\r\n");
    std::vector<absl::string_view> first = absl::StrSplit(lines[0], ' ');
    if (first.size() != 3 || first[0].empty() || first[1].empty() ||
        !absl::StartsWith(first[2], "HTTP/1.")) {
      SendError(fd, 400, "malformed request line");
      break;
    }
    req.method = std::string(first[0]);
    const absl::string_view target = first[1];
    const size_t q = target.find('?');
    req.path = std::string(target.substr(0, q));
    if (q != absl::string_view::npos) req.query = std::string(target.substr(q + 1));
    bool bad_header = false;
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == absl::string_view::npos || colon == 0) {
        bad_header = true;
        break;
      }
      req.headers.emplace_back(absl::AsciiStrToLower(lines[i].substr(0, colon)),
                               std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
    }
    if (bad_header) {
      SendError(fd, 400, "malformed header line");
      break;
    }
    const std::string* connection = req.Header("connection");
    const std::string conn_value = connection ? absl::AsciiStrToLower(*connection) : "";
    const bool keep_alive =
        first[2] == "HTTP/1.1" ? conn_value != "close" : conn_value == "keep-alive";
    if (req.Header("transfer-encoding") != nullptr) {
      SendError(fd, 411, "request bodies must come with Content-Length, not chunked");
      break;
    }
    size_t length = 0;
    if (const std::string* cl = req.Header("content-length"); cl != nullptr) {
      if (!absl::SimpleAtoi(*cl, &length)) {
        SendError(fd, 400, absl::StrCat("Content-Length: not a number: ", *cl));
        break;
      }
    }
    if (length > options_.max_body_bytes) {
      // Refused before reading it; the connection closes, so the rest is never read either.
      SendError(
          fd, 413,
          absl::StrCat("request body: ", length, " bytes, at most ", options_.max_body_bytes));
      break;
    }
    buf.erase(0, head_end + 4);
    if (buf.size() < length) {
      const std::string* expect = req.Header("expect");
      if (expect != nullptr && absl::AsciiStrToLower(*expect) == "100-continue" &&
          !SendAllTo(fd, "HTTP/1.1 100 Continue\r\n\r\n")) {
        break;
      }
    }
    bool complete = true;
    while (buf.size() < length) {
      if (!ReadSome(fd, buf, options_.read_timeout)) {
        complete = false;
        break;
      }
    }
    if (!complete) break;
    req.body = buf.substr(0, length);
    buf.erase(0, length);
    HttpResponse resp(fd, keep_alive);
    handler_(req, resp);
    if (!resp.started()) resp.Send(500, "text/plain", "the handler gave no answer\n");
    if (resp.chunked_) resp.End();
    if (resp.failed_ || !keep_alive) break;
  }
  absl::MutexLock lock(&mu_);
  close(fd);
  conn->fd = -1;
  conn->done = true;
}

}  // namespace moe
