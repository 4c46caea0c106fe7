// Mutual TLS for every gRPC hop: one set of flags in every binary (--tls_cert, --tls_key,
// --tls_ca), read once in main into a TlsConfig, which hands out the server credentials (a
// client must present a certificate signed by the CA) and the channel credentials (the peer's
// certificate must be signed by the CA and name the host dialed). Without the flags everything is
// plaintext, the default on loopback. Torch-free; plain values, thread-compatible.
#ifndef MOE_SERVICES_COMMON_TLS_H_
#define MOE_SERVICES_COMMON_TLS_H_

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"

namespace moe {

struct TlsConfig {
  std::string cert_pem;  // this process's certificate chain (server and client)
  std::string key_pem;   // its private key
  std::string ca_pem;    // the CA every peer's certificate must be signed by
  bool enabled() const { return !ca_pem.empty(); }
};

// Reads the three PEM files: all three paths or none (plaintext). Errors name the flag.
absl::StatusOr<TlsConfig> LoadTls(const std::string& cert_path, const std::string& key_path,
                                  const std::string& ca_path);
// LoadTls of --tls_cert, --tls_key, --tls_ca; when none is given, of $MOE_TLS_CERT,
// $MOE_TLS_KEY, $MOE_TLS_CA (errors still name the flags).
absl::StatusOr<TlsConfig> TlsFromFlags();

// Plaintext when !tls.enabled(); else TLS that requires and verifies a client certificate.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const TlsConfig& tls);
// Plaintext when !tls.enabled(); else TLS presenting this process's certificate.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const TlsConfig& tls);

// Where a service listens and how to reach it. A bare address converts implicitly: plaintext.
struct Endpoint {
  Endpoint(std::string a) : address(std::move(a)) {}  // NOLINT: implicit on purpose
  Endpoint(const char* a) : address(a) {}             // NOLINT
  Endpoint(std::string a, std::shared_ptr<grpc::ChannelCredentials> c)
      : address(std::move(a)), credentials(std::move(c)) {}

  // A channel to `address` with `credentials` (plaintext when null).
  std::shared_ptr<grpc::Channel> Dial() const;
  std::shared_ptr<grpc::Channel> Dial(const grpc::ChannelArguments& args) const;

  std::string address;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
};

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_TLS_H_
