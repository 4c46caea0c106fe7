#include "services/common/host_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace moe {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view address, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": \"", address, "\" ", what));
}

}  // namespace

absl::StatusOr<HostPort> ParseHostPort(absl::string_view address, absl::string_view field) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return Invalid(field, address, "is not HOST:PORT");
  HostPort out;
  out.host = std::string(address.substr(0, colon));
  const absl::string_view host = out.host;
  if (!host.empty() && host.front() == '[' && (host.size() < 2 || host.back() != ']')) {
    return Invalid(field, address, "has an unclosed '[' in the host");
  }
  if (!host.empty() && host.front() != '[' && host.find(':') != absl::string_view::npos) {
    return Invalid(field, address, "has an IPv6 host without brackets (want [HOST]:PORT)");
  }
  const absl::string_view port = address.substr(colon + 1);
  if (port.empty() || !std::all_of(port.begin(), port.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(port, &out.port) || out.port > 65535) {
    return Invalid(field, address, "has no port in [0, 65535]");
  }
  return out;
}

bool IsWildcardHost(absl::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) return true;
  const std::string text(host);
  std::array<unsigned char, 16> bytes{};
  const bool literal = inet_pton(AF_INET, text.c_str(), bytes.data()) == 1 ||
                       inet_pton(AF_INET6, text.c_str(), bytes.data()) == 1;
  return literal && std::all_of(bytes.begin(), bytes.end(), [](unsigned char b) { return b == 0; });
}

bool IsLoopbackHost(absl::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string lower = absl::AsciiStrToLower(host);
  if (lower == "localhost" || lower == "localhost." || absl::EndsWith(lower, ".localhost")) {
    return true;
  }
  in_addr v4{};
  if (inet_pton(AF_INET, lower.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, lower.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_V4MAPPED(&v6)) return v6.s6_addr[12] == 127;
  return IN6_IS_ADDR_LOOPBACK(&v6);
}

absl::Status CheckDialable(absl::string_view address, absl::string_view field) {
  absl::StatusOr<HostPort> hp = ParseHostPort(address, field);
  if (!hp.ok()) return hp.status();
  if (hp->host.empty()) return Invalid(field, address, "has no host (want HOST:PORT)");
  if (IsWildcardHost(hp->host)) {
    return Invalid(field, address,
                   "is a listen-everywhere address, which no other process can dial: give a host "
                   "name or IP");
  }
  if (hp->port == 0) return Invalid(field, address, "has port 0, which no process can dial");
  return absl::OkStatus();
}

}  // namespace moe
