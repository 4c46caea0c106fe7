#include "services/common/flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "gRPC listen address HOST:PORT");
ABSL_FLAG(std::string, metrics_listen, "", "Prometheus /metrics address HOST:PORT; empty = off");
ABSL_FLAG(std::string, model, "models/brown-moe", "checkpoint directory");
ABSL_FLAG(std::string, random_init, "",
          "config JSON of a randomly initialised model (instead of --model)");
ABSL_FLAG(uint64_t, init_seed, 0, "seed of --random_init; every service must use the same");
ABSL_FLAG(std::string, tokenizer, "models/brown-moe/tokenizer.model",
          "with --random_init: tokenizer to use when its vocabulary size matches");
ABSL_FLAG(std::string, cluster, "",
          "cluster file (the starting placement); empty = none: the router starts with no pools "
          "and pools join it (--join), the orchestrator needs --router");
ABSL_FLAG(int, threads, 1, "intra-op threads of LibTorch and OpenBLAS");

namespace moe {

absl::StatusOr<CommonFlags> ReadCommonFlags() {
  CommonFlags f;
  absl::StatusOr<TlsConfig> tls = TlsFromFlags();
  if (!tls.ok()) return tls.status();
  f.tls = *std::move(tls);
  f.listen = absl::GetFlag(FLAGS_listen);
  f.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  f.model.random_init_config = absl::GetFlag(FLAGS_random_init);
  f.model.model_dir = f.model.random_init_config.empty() ? absl::GetFlag(FLAGS_model) : "";
  f.model.seed = absl::GetFlag(FLAGS_init_seed);
  if (!f.model.random_init_config.empty()) f.model.tokenizer = absl::GetFlag(FLAGS_tokenizer);
  f.cluster = absl::GetFlag(FLAGS_cluster);
  f.threads = absl::GetFlag(FLAGS_threads);
  return f;
}

ServerOptions ServerOptionsFor(const std::string& service, const CommonFlags& flags) {
  ServerOptions o;
  o.service = service;
  o.listen = flags.listen;
  o.metrics_listen = flags.metrics_listen;
  if (flags.tls.enabled()) o.credentials = ServerCredentials(flags.tls);
  return o;
}

}  // namespace moe
