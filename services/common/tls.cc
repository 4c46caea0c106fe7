#include "services/common/tls.h"

#include <grpcpp/create_channel.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain this process presents, as server and as client (mutual TLS; "
          "with --tls_key and --tls_ca; none of the three = $MOE_TLS_CERT, $MOE_TLS_KEY, "
          "$MOE_TLS_CA if set, else plaintext)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM certificate of the CA that signs every peer: servers refuse clients without a "
          "certificate it signed, clients refuse such servers");

namespace moe {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, absl::string_view flag,
                                    absl::string_view marker) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--", flag, "=", path, ": cannot read"));
  std::stringstream text;
  text << in.rdbuf();
  std::string pem = text.str();
  if (!absl::StrContains(pem, "-----BEGIN ") || !absl::StrContains(pem, marker)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", path, ": not a PEM file with a ", marker, " block"));
  }
  return pem;
}

}  // namespace

absl::StatusOr<TlsConfig> LoadTls(const std::string& cert_path, const std::string& key_path,
                                  const std::string& ca_path) {
  const int given = !cert_path.empty() + !key_path.empty() + !ca_path.empty();
  if (given == 0) return TlsConfig();
  if (given != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("mutual TLS needs all of --tls_cert, --tls_key and --tls_ca; missing:",
                     cert_path.empty() ? " --tls_cert" : "", key_path.empty() ? " --tls_key" : "",
                     ca_path.empty() ? " --tls_ca" : ""));
  }
  TlsConfig tls;
  absl::StatusOr<std::string> cert = ReadPem(cert_path, "tls_cert", "CERTIFICATE");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem(key_path, "tls_key", "PRIVATE KEY");
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> ca = ReadPem(ca_path, "tls_ca", "CERTIFICATE");
  if (!ca.ok()) return ca.status();
  tls.cert_pem = *std::move(cert);
  tls.key_pem = *std::move(key);
  tls.ca_pem = *std::move(ca);
  return tls;
}

absl::StatusOr<TlsConfig> TlsFromFlags() {
  std::string cert = absl::GetFlag(FLAGS_tls_cert), key = absl::GetFlag(FLAGS_tls_key),
              ca = absl::GetFlag(FLAGS_tls_ca);
  if (cert.empty() && key.empty() && ca.empty()) {
    // Containers: the same three settings from the environment (a compose override or a
    // Kubernetes patch adds variables more easily than arguments).
    auto env = [](const char* name) {
      const char* v = std::getenv(name);
      return std::string(v != nullptr ? v : "");
    };
    cert = env("MOE_TLS_CERT");
    key = env("MOE_TLS_KEY");
    ca = env("MOE_TLS_CA");
  }
  return LoadTls(cert, key, ca);
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const TlsConfig& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = tls.ca_pem;
  options.pem_key_cert_pairs.push_back({tls.key_pem, tls.cert_pem});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const TlsConfig& tls) {
  if (!tls.enabled()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls.ca_pem;
  options.pem_private_key = tls.key_pem;
  options.pem_cert_chain = tls.cert_pem;
  return grpc::SslCredentials(options);
}

std::shared_ptr<grpc::Channel> Endpoint::Dial() const { return Dial(grpc::ChannelArguments()); }

std::shared_ptr<grpc::Channel> Endpoint::Dial(const grpc::ChannelArguments& args) const {
  return grpc::CreateCustomChannel(
      address, credentials != nullptr ? credentials : grpc::InsecureChannelCredentials(), args);
}

}  // namespace moe
