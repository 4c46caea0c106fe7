// Structured logs: one JSON object per line on stderr. Thread-safe (one write per line).
#ifndef MOE_SERVICES_COMMON_LOG_H_
#define MOE_SERVICES_COMMON_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace moe {

class Logger {
 public:
  explicit Logger(std::string service) : service_(std::move(service)) {}
  using Fields = std::initializer_list<std::pair<absl::string_view, std::string>>;
  void Info(absl::string_view event, Fields fields = {}) const { Write("info", event, fields); }
  void Warn(absl::string_view event, Fields fields = {}) const { Write("warn", event, fields); }
  void Error(absl::string_view event, Fields fields = {}) const { Write("error", event, fields); }

 private:
  void Write(absl::string_view level, absl::string_view event, Fields fields) const;
  std::string service_;
};

}  // namespace moe

#endif  // MOE_SERVICES_COMMON_LOG_H_
