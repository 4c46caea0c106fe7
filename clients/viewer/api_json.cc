#include "clients/viewer/api_json.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"

namespace moe::viewer {
namespace {

using nlohmann::json;

// The offending value as the client wrote it, short enough for an error line.
std::string Shown(const json& value) {
  std::string s = value.dump();
  if (s.size() > 40) s = absl::StrCat(s.substr(0, 37), "...");
  return s;
}

absl::Status FieldError(absl::string_view field, absl::string_view what, const json& value) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what, ", got ", Shown(value)));
}

absl::StatusOr<json> ParseObject(absl::string_view body) {
  json j;
  try {
    j = json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {
    // e.what() says where the JSON broke: "parse error at line 1, column 12: ...", or which
    // number does not fit ("number overflow parsing '55E555'": an out_of_range, not a
    // parse_error; found by fuzzing, it ended the viewer).
    return absl::InvalidArgumentError(absl::StrCat("request body: not valid JSON: ", e.what()));
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("request body: must be a JSON object, got ", j.type_name()));
  }
  return j;
}

absl::Status UnknownField(absl::string_view field, std::initializer_list<const char*> known) {
  return absl::InvalidArgumentError(
      absl::StrCat("\"", field, "\": unknown field (known: ", absl::StrJoin(known, ", "), ")"));
}

// An integer that fits in [lo, hi]; integral floats (1e2) count, as JavaScript has no integers.
absl::StatusOr<int64_t> GetInteger(const json& value, absl::string_view field, int64_t lo,
                                   int64_t hi) {
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v <= static_cast<uint64_t>(hi)) return static_cast<int64_t>(v);
  } else if (value.is_number_integer()) {
    const int64_t v = value.get<int64_t>();
    if (v >= lo && v <= hi) return v;
  } else if (value.is_number_float()) {
    const double v = value.get<double>();
    if (std::floor(v) != v) return FieldError(field, "must be an integer", value);
    if (v >= static_cast<double>(lo) && v <= static_cast<double>(hi)) {
      return static_cast<int64_t>(v);
    }
  } else {
    return FieldError(field, "must be an integer", value);
  }
  return FieldError(field, absl::StrCat("must be in [", lo, ", ", hi, "]"), value);
}

absl::StatusOr<float> GetFloat(const json& value, absl::string_view field) {
  if (!value.is_number()) return FieldError(field, "must be a number", value);
  const double v = value.get<double>();
  if (std::fabs(v) > std::numeric_limits<float>::max()) {
    return FieldError(field, "is out of the float range", value);
  }
  return static_cast<float>(v);
}

// A uint64 as a JSON number or a string of decimal digits (which keeps all 64 bits in JS).
absl::StatusOr<uint64_t> GetUint64(const json& value, absl::string_view field) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    return static_cast<uint64_t>(value.get<int64_t>());
  }
  if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    uint64_t v = 0;
    if (!s.empty() && std::all_of(s.begin(), s.end(), absl::ascii_isdigit) &&
        absl::SimpleAtoi(s, &v)) {
      return v;
    }
  }
  return FieldError(field, "must be an integer in [0, 2^64 - 1] (a number or a string of digits)",
                    value);
}

absl::StatusOr<bool> GetBool(const json& value, absl::string_view field) {
  if (!value.is_boolean()) return FieldError(field, "must be true or false", value);
  return value.get<bool>();
}

}  // namespace

json ProtoToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string text;
  // Printing a valid message only fails for Any without a type resolver; the protos have none.
  if (!google::protobuf::util::MessageToJsonString(message, &text, options).ok()) {
    return json::object();
  }
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

json GenerateTokenJson(const moe::v1::GenerateResponse& response) { return ProtoToJson(response); }

json GenerateDoneJson(const GenerateSummary& summary) {
  return json{{"request_id", summary.request_id},
              {"finish_reason", summary.finish_reason},
              {"seed", absl::StrCat(summary.seed)},  // a string like every uint64 of the API
              {"prompt_tokens", summary.prompt_tokens},
              {"generated_tokens", summary.generated_tokens}};
}

json LiveTokenJson(const moe::v1::RoutingEvent& event) {
  const moe::v1::TokenRouted& token = event.token();
  json out = ProtoToJson(token);
  out.erase("routing");
  json routing = ProtoToJson(token.routing());
  for (auto it = routing.begin(); it != routing.end(); ++it) out[it.key()] = it.value();
  out["time_unix_micros"] = absl::StrCat(event.time_unix_micros());
  return out;
}

json LoadJson(const moe::v1::RoutingEvent& event) {
  json out = ProtoToJson(event.load());
  out["time_unix_micros"] = absl::StrCat(event.time_unix_micros());
  return out;
}

json InfoJson(const moe::v1::ModelInfo& info, const moe::v1::Placement* placement,
              absl::string_view source) {
  json model = ProtoToJson(info);
  model.erase("expert_profiles_json");  // served parsed, as "profiles"
  json out{{"model", std::move(model)},
           {"placement", placement != nullptr ? ProtoToJson(*placement) : json(nullptr)},
           {"profiles", nullptr},
           {"source", std::string(source)}};
  if (!info.expert_profiles_json().empty()) {
    json profiles = json::parse(info.expert_profiles_json(), nullptr, /*allow_exceptions=*/false);
    if (profiles.is_discarded()) {
      out["profiles_error"] = "expert_profiles_json: not valid JSON";
    } else {
      out["profiles"] = std::move(profiles);
    }
  }
  return out;
}

json ErrorJson(const absl::Status& status) {
  return json{{"code", absl::StatusCodeToString(status.code())},
              {"message", std::string(status.message())}};
}

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;  // as nginx: the client went away
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

absl::StatusOr<moe::v1::GenerateRequest> ParseGenerateBody(absl::string_view body) {
  absl::StatusOr<json> j = ParseObject(body);
  if (!j.ok()) return j.status();
  moe::v1::GenerateRequest request;
  request.set_echo_prompt(true);
  constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
  constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();
  for (auto it = j->begin(); it != j->end(); ++it) {
    const std::string& key = it.key();
    const json& value = it.value();
    if (value.is_null()) continue;
    if (key == "prompt") {
      if (!value.is_string()) return FieldError(key, "must be a string", value);
      request.set_prompt(value.get<std::string>());
    } else if (key == "max_tokens" || key == "top_k" || key == "n" || key == "logprobs") {
      absl::StatusOr<int64_t> v = GetInteger(value, key, kInt32Min, kInt32Max);
      if (!v.ok()) return v.status();
      const int32_t i = static_cast<int32_t>(*v);
      if (key == "max_tokens") request.set_max_tokens(i);
      if (key == "top_k") request.set_top_k(i);
      if (key == "n") request.set_n(i);
      if (key == "logprobs") request.set_logprobs(i);
    } else if (key == "temperature" || key == "top_p" || key == "presence_penalty" ||
               key == "frequency_penalty" || key == "repetition_penalty") {
      absl::StatusOr<float> v = GetFloat(value, key);
      if (!v.ok()) return v.status();
      if (key == "temperature") request.set_temperature(*v);
      if (key == "top_p") request.set_top_p(*v);
      if (key == "presence_penalty") request.set_presence_penalty(*v);
      if (key == "frequency_penalty") request.set_frequency_penalty(*v);
      if (key == "repetition_penalty") request.set_repetition_penalty(*v);
    } else if (key == "stop") {
      if (value.is_string()) {
        request.add_stop(value.get<std::string>());
      } else if (value.is_array()) {
        for (const json& s : value) {
          if (!s.is_string())
            return FieldError(key, "must be a string or a list of strings", value);
          request.add_stop(s.get<std::string>());
        }
      } else {
        return FieldError(key, "must be a string or a list of strings", value);
      }
    } else if (key == "seed") {
      absl::StatusOr<uint64_t> v = GetUint64(value, key);
      if (!v.ok()) return v.status();
      request.set_seed(*v);
    } else if (key == "include_probs" || key == "echo_prompt") {
      absl::StatusOr<bool> v = GetBool(value, key);
      if (!v.ok()) return v.status();
      if (key == "include_probs") {
        request.set_include_probs(*v);
      } else {
        request.set_echo_prompt(*v);
      }
    } else {
      return UnknownField(key, {"prompt", "max_tokens", "temperature", "top_k", "top_p", "seed",
                                "n", "stop", "presence_penalty", "frequency_penalty",
                                "repetition_penalty", "logprobs", "include_probs", "echo_prompt"});
    }
  }
  return request;
}

absl::StatusOr<moe::v1::RoutingPolicy> ApplyPolicyBody(absl::string_view body,
                                                       moe::v1::RoutingPolicy current) {
  absl::StatusOr<json> j = ParseObject(body);
  if (!j.ok()) return j.status();
  for (auto it = j->begin(); it != j->end(); ++it) {
    const std::string& key = it.key();
    const json& value = it.value();
    if (value.is_null()) continue;
    if (key == "top_k") {
      absl::StatusOr<int64_t> v = GetInteger(value, key, std::numeric_limits<int32_t>::min(),
                                             std::numeric_limits<int32_t>::max());
      if (!v.ok()) return v.status();
      current.set_top_k(static_cast<int32_t>(*v));
    } else if (key == "noise_std" || key == "capacity_factor") {
      absl::StatusOr<float> v = GetFloat(value, key);
      if (!v.ok()) return v.status();
      if (key == "noise_std") {
        current.set_noise_std(*v);
      } else {
        current.set_capacity_factor(*v);
      }
    } else if (key == "noise_seed") {
      absl::StatusOr<uint64_t> v = GetUint64(value, key);
      if (!v.ok()) return v.status();
      current.set_noise_seed(*v);
    } else {
      return UnknownField(key, {"top_k", "noise_std", "capacity_factor", "noise_seed"});
    }
  }
  return current;
}

}  // namespace moe::viewer
