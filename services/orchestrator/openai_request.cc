#include "services/orchestrator/openai_request.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace moe {
namespace {

using json = nlohmann::json;

// clang-format off
constexpr const char* kKnownFields[] = {
    "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "n", "stop", "seed",
    "presence_penalty", "frequency_penalty", "repetition_penalty", "logprobs", "echo", "stream",
    "stream_options", "best_of", "logit_bias", "suffix", "user", "moe_routing"};
// clang-format on

absl::Status FieldError(absl::string_view field, absl::string_view what, const json& value) {
  std::string shown = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (shown.size() > 80) shown = absl::StrCat(shown.substr(0, 80), "...");
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what, ", got ", shown));
}

absl::StatusOr<int64_t> GetInteger(const json& v, absl::string_view field, int64_t lo, int64_t hi) {
  const std::string range = absl::StrCat("must be in [", lo, ", ", hi, "]");
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u <= static_cast<uint64_t>(hi)) return static_cast<int64_t>(u);
    return FieldError(field, range, v);
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i >= lo && i <= hi) return i;
    return FieldError(field, range, v);
  }
  if (!v.is_number_float()) return FieldError(field, "must be an integer", v);
  const double d = v.get<double>();
  if (std::floor(d) != d) return FieldError(field, "must be an integer", v);
  if (d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) {
    return static_cast<int64_t>(d);
  }
  return FieldError(field, range, v);
}

absl::StatusOr<float> GetFloat(const json& v, absl::string_view field) {
  if (!v.is_number()) return FieldError(field, "must be a number", v);
  const double d = v.get<double>();
  if (!(std::fabs(d) <= std::numeric_limits<float>::max())) {
    return FieldError(field, "is out of the float range", v);
  }
  return static_cast<float>(d);
}

absl::StatusOr<bool> GetBool(const json& v, absl::string_view field) {
  if (!v.is_boolean()) return FieldError(field, "must be true or false", v);
  return v.get<bool>();
}

absl::StatusOr<std::vector<std::string>> GetStrings(const json& v, absl::string_view field) {
  std::vector<std::string> out;
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const json& e : v) {
      if (!e.is_string()) return FieldError(field, "must be a string or a list of strings", v);
      out.push_back(e.get<std::string>());
    }
  } else {
    return FieldError(field, "must be a string or a list of strings", v);
  }
  return out;
}

}  // namespace

absl::StatusOr<CompletionsRequest> ParseCompletionsBody(absl::string_view body) {
  const json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError("body: not valid JSON (send a JSON object)");
  }
  if (!j.is_object()) return absl::InvalidArgumentError("body: must be a JSON object");
  CompletionsRequest out;
  moe::v1::GenerateRequest proto;
  proto.set_max_tokens(kOpenAiDefaultMaxTokens);
  proto.set_temperature(kOpenAiDefaultTemperature);
  std::vector<std::string> prompts;
  bool have_prompt = false, have_model = false;
  int64_t best_of = -1;
  constexpr int64_t kI32Min = std::numeric_limits<int32_t>::min();
  constexpr int64_t kI32Max = std::numeric_limits<int32_t>::max();
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    if (v.is_null()) continue;  // OpenAI's clients send null for "not given"
    if (key == "model") {
      if (!v.is_string()) return FieldError(key, "must be a string", v);
      out.model = v.get<std::string>();
      have_model = true;
    } else if (key == "prompt") {
      if (v.is_array() && !v.empty() && !v[0].is_string()) {
        return FieldError(key, "must be a string or a list of strings (token ids are not accepted)",
                          v);
      }
      absl::StatusOr<std::vector<std::string>> p = GetStrings(v, key);
      if (!p.ok()) return p.status();
      if (p->empty()) return FieldError(key, "must not be an empty list", v);
      if (p->size() > kOpenAiMaxPrompts) {
        return absl::InvalidArgumentError(
            absl::StrCat("prompt: at most ", kOpenAiMaxPrompts, " prompts, got ", p->size()));
      }
      prompts = *std::move(p);
      have_prompt = true;
    } else if (key == "max_tokens" || key == "n" || key == "logprobs" || key == "top_k" ||
               key == "best_of") {
      absl::StatusOr<int64_t> i = GetInteger(v, key, kI32Min, kI32Max);
      if (!i.ok()) return i.status();
      const int32_t x = static_cast<int32_t>(*i);
      if (key == "max_tokens") proto.set_max_tokens(x);
      if (key == "n") proto.set_n(x), out.n = x;
      if (key == "logprobs") proto.set_logprobs(x), out.logprobs = x;
      if (key == "top_k") proto.set_top_k(x == -1 ? 0 : x);  // vLLM's -1 = off
      if (key == "best_of") best_of = x;
    } else if (key == "temperature" || key == "top_p" || key == "presence_penalty" ||
               key == "frequency_penalty" || key == "repetition_penalty") {
      absl::StatusOr<float> f = GetFloat(v, key);
      if (!f.ok()) return f.status();
      if (key == "temperature") proto.set_temperature(*f);
      if (key == "top_p") proto.set_top_p(*f);
      if (key == "presence_penalty") proto.set_presence_penalty(*f);
      if (key == "frequency_penalty") proto.set_frequency_penalty(*f);
      if (key == "repetition_penalty") proto.set_repetition_penalty(*f);
    } else if (key == "seed") {
      if (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() < 0) {
        return FieldError(key, "must be >= 0", v);
      }
      if (!v.is_number_unsigned()) return FieldError(key, "must be an integer >= 0", v);
      proto.set_seed(v.get<uint64_t>());
    } else if (key == "stop") {
      absl::StatusOr<std::vector<std::string>> s = GetStrings(v, key);
      if (!s.ok()) return s.status();
      for (std::string& x : *s) proto.add_stop(std::move(x));
    } else if (key == "echo" || key == "stream" || key == "moe_routing") {
      absl::StatusOr<bool> b = GetBool(v, key);
      if (!b.ok()) return b.status();
      if (key == "echo") out.echo = *b;
      if (key == "stream") out.stream = *b;
      if (key == "moe_routing") out.routing = *b;
    } else if (key == "stream_options") {
      if (!v.is_object()) return FieldError(key, "must be an object", v);
      for (auto o = v.begin(); o != v.end(); ++o) {
        if (o.key() != "include_usage") {
          return absl::InvalidArgumentError(absl::StrCat("stream_options: unknown field \"",
                                                         o.key(), "\" (known: include_usage)"));
        }
        if (o.value().is_null()) continue;
        absl::StatusOr<bool> b = GetBool(o.value(), "stream_options.include_usage");
        if (!b.ok()) return b.status();
        out.include_usage = *b;
      }
    } else if (key == "logit_bias") {
      if (!v.is_object() || !v.empty()) return FieldError(key, "is not supported", v);
    } else if (key == "suffix") {
      if (!v.is_string() || !v.get<std::string>().empty()) {
        return FieldError(key, "is not supported", v);
      }
    } else if (key == "user") {
      if (!v.is_string()) return FieldError(key, "must be a string", v);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(key, ": unknown field (known: ", absl::StrJoin(kKnownFields, ", "), ")"));
    }
  }
  if (!have_model) return absl::InvalidArgumentError("model: required");
  if (!have_prompt) return absl::InvalidArgumentError("prompt: required");
  if (best_of != -1 && best_of != out.n) {
    return absl::InvalidArgumentError(
        absl::StrCat("best_of: only best_of equal to n (", out.n, ") is supported, got ", best_of));
  }
  if (out.echo && out.logprobs >= 0) {
    return absl::InvalidArgumentError(
        "echo: not supported together with logprobs (prompt tokens get no log-probabilities "
        "here)");
  }
  for (std::string& p : prompts) {
    out.prompts.push_back(proto);
    out.prompts.back().set_prompt(std::move(p));
  }
  return out;
}

ApiError ApiErrorFrom(const absl::Status& status) {
  ApiError e;
  e.message = std::string(status.message());
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      e.http_status = 400;
      break;
    case absl::StatusCode::kNotFound:
      e.http_status = 404;
      break;
    case absl::StatusCode::kResourceExhausted:
      e.http_status = 429;
      break;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kCancelled:
      e.http_status = 503;
      break;
    case absl::StatusCode::kDeadlineExceeded:
      e.http_status = 504;
      break;
    default:
      e.http_status = 500;
  }
  e.type = e.http_status < 500
               ? (e.http_status == 429 ? "rate_limit_error" : "invalid_request_error")
               : "server_error";
  if (e.http_status == 400 || e.http_status == 404) {
    // "max_tokens: ..." or "stop[1]: ..." name the field.
    const size_t colon = e.message.find(':');
    if (colon != std::string::npos && colon > 0) {
      std::string field = e.message.substr(0, colon);
      if (const size_t bracket = field.find('['); bracket != std::string::npos) {
        field.resize(bracket);
      }
      const bool plain = std::all_of(field.begin(), field.end(), [](char c) {
        return absl::ascii_islower(c) || c == '_' || c == '.';
      });
      if (plain && !field.empty()) e.param = field;
    }
  }
  return e;
}

std::string ApiErrorJson(const ApiError& error) {
  json j = {{"error",
             {{"message", error.message},
              {"type", error.type},
              {"param", error.param.empty() ? json(nullptr) : json(error.param)},
              {"code", error.code.empty() ? json(nullptr) : json(error.code)}}}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace moe
