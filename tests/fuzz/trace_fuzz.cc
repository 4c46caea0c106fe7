// The viewer's trace reader on outside bytes: a trace file (with or without its header) reads
// or fails with DATA_LOSS naming the file; a trace that reads gets a layout or a clear error.
#include "clients/viewer/trace.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moe::fuzz::ByteReader in(data, size);
  // Half the inputs start with the magic line, so the header path is reached.
  std::string bytes = in.Byte() % 2 == 0 ? moe::viewer::kTraceMagic : "";
  bytes += in.Rest();
  const std::string path = moe::fuzz::WriteTempFile("trace", bytes);
  absl::StatusOr<moe::viewer::Trace> trace = moe::viewer::ReadTrace(path);
  if (!trace.ok()) {
    FUZZ_CHECK(trace.status().code() == absl::StatusCode::kDataLoss, trace.status().ToString());
    return 0;
  }
  absl::StatusOr<moe::viewer::ModelLayout> layout = moe::viewer::TraceLayout(*trace);
  if (!layout.ok()) {
    FUZZ_CHECK(moe::fuzz::IsClearError(layout.status()), layout.status().ToString());
  } else {
    FUZZ_CHECK(layout->n_layers >= 0, "negative layer count");
  }
  absl::StatusOr<moe::viewer::LoadedTrace> loaded = moe::viewer::LoadTraceFlag(path);
  FUZZ_CHECK(loaded.ok() || moe::fuzz::IsClearError(loaded.status()), loaded.status().ToString());
  return 0;
}
