// The viewer's HTTP API on outside bytes: the bodies of POST /api/generate and /api/policy, and
// the list and address syntax of its flags. Each parses or fails INVALID_ARGUMENT with a message.
#include "clients/viewer/api_json.h"
#include "clients/viewer/options.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moe::fuzz::ByteReader in(data, size);
  const uint8_t mode = in.Byte() % 4;
  const std::string text = in.Rest();
  absl::Status status;
  switch (mode) {
    case 0:
      status = moe::viewer::ParseGenerateBody(text).status();
      break;
    case 1: {
      moe::v1::RoutingPolicy current;
      current.set_top_k(2);
      status = moe::viewer::ApplyPolicyBody(text, current).status();
      break;
    }
    case 2: {
      absl::StatusOr<std::vector<int>> ids = moe::viewer::ParseIntList(text, "--layers");
      status = ids.status();
      if (ids.ok()) {
        for (size_t i = 1; i < ids->size(); ++i) {
          FUZZ_CHECK((*ids)[i - 1] < (*ids)[i], "list not sorted and unique");
        }
      }
      break;
    }
    default:
      status = moe::viewer::ValidateHostPort(text, "--listen", true);
      break;
  }
  if (!status.ok()) {
    FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument, status.ToString());
    FUZZ_CHECK(!status.message().empty(), "an error without a message");
  }
  return 0;
}
