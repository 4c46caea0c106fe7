#include "clients/viewer/trace.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "google/protobuf/util/delimited_message_util.h"

namespace moe::viewer {
namespace {

using google::protobuf::util::ParseDelimitedFromZeroCopyStream;
using google::protobuf::util::SerializeDelimitedToOstream;

}  // namespace

absl::StatusOr<std::unique_ptr<TraceWriter>> TraceWriter::Create(const std::string& path,
                                                                 const TraceHeader* header) {
  std::unique_ptr<TraceWriter> writer(new TraceWriter(path));
  writer->out_.open(path, std::ios::binary | std::ios::trunc);
  if (!writer->out_) return writer->StreamError("cannot create");
  if (header != nullptr) {
    writer->out_.write(kTraceMagic, kTraceMagicSize);
    if (!SerializeDelimitedToOstream(header->model, &writer->out_) ||
        !SerializeDelimitedToOstream(header->placement, &writer->out_)) {
      return writer->StreamError("cannot write the header to");
    }
  }
  if (absl::Status s = writer->Flush(); !s.ok()) return s;
  return writer;
}

absl::Status TraceWriter::Write(const moe::v1::RoutingEvent& event) {
  if (!out_.is_open()) return absl::FailedPreconditionError(absl::StrCat(path_, ": closed"));
  if (!SerializeDelimitedToOstream(event, &out_)) return StreamError("cannot write to");
  ++events_written_;
  return absl::OkStatus();
}

absl::Status TraceWriter::Flush() {
  if (out_.is_open() && !out_.flush()) return StreamError("cannot write to");
  return absl::OkStatus();
}

absl::Status TraceWriter::Close() {
  if (!out_.is_open()) return absl::OkStatus();
  absl::Status s = Flush();
  out_.close();
  if (s.ok() && out_.fail()) s = StreamError("cannot close");
  return s;
}

absl::Status TraceWriter::StreamError(const char* what) {
  const int err = errno;
  return absl::InternalError(
      absl::StrCat(what, " ", path_, ": ", err != 0 ? std::strerror(err) : "stream error"));
}

absl::StatusOr<Trace> ReadTrace(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("trace ", path, ": cannot open: ", std::strerror(errno)));
  }
  char magic[kTraceMagicSize] = {};
  in.read(magic, kTraceMagicSize);
  const bool has_header = in.gcount() == static_cast<std::streamsize>(kTraceMagicSize) &&
                          std::memcmp(magic, kTraceMagic, kTraceMagicSize) == 0;
  if (!has_header) {
    in.clear();
    in.seekg(0);
  }
  google::protobuf::io::IstreamInputStream stream(&in);
  Trace trace;
  if (has_header) {
    TraceHeader header;
    bool eof = false;
    if (!ParseDelimitedFromZeroCopyStream(&header.model, &stream, &eof) ||
        !ParseDelimitedFromZeroCopyStream(&header.placement, &stream, &eof)) {
      return absl::DataLossError(absl::StrCat("trace ", path, ": damaged header"));
    }
    trace.header = std::move(header);
  }
  for (;;) {
    moe::v1::RoutingEvent event;
    bool clean_eof = false;
    if (!ParseDelimitedFromZeroCopyStream(&event, &stream, &clean_eof)) {
      if (clean_eof) break;
      return absl::DataLossError(absl::StrCat("trace ", path, ": event ", trace.events.size(),
                                              " is truncated or damaged (", trace.events.size(),
                                              " events before it are good)"));
    }
    trace.events.push_back(std::move(event));
  }
  return trace;
}

ModelLayout LayoutFromModelInfo(const moe::v1::ModelInfo& info) {
  ModelLayout layout;
  layout.flow.n_experts = info.n_experts();
  layout.flow.granularity = std::max(1, info.granularity());
  layout.flow.n_shared = info.n_shared();
  layout.flow.top_k = info.top_k();
  layout.n_layers = info.n_layers();
  layout.name = info.name();
  layout.origin = "model info";
  return layout;
}

absl::StatusOr<ModelLayout> InferLayout(absl::Span<const moe::v1::RoutingEvent> events) {
  int max_id = -1;
  int width = 0;  // n_experts * m when a load snapshot or probs told us
  bool width_exact = false;
  int m_from_choice = 0;  // m from a choice with expert > 0
  int max_micro = -1;
  int n_shared = 0;
  int top_k = 0;
  int n_layers = 0;
  int64_t used = 0;
  for (const moe::v1::RoutingEvent& event : events) {
    if (event.has_token()) {
      ++used;
      const moe::v1::LayerRouting& r = event.token().routing();
      n_layers = std::max(n_layers, r.layer() + 1);
      top_k = std::max(top_k, r.experts_size());
      for (const moe::v1::ExpertChoice& c : r.experts()) {
        max_id = std::max(max_id, c.id());
        max_micro = std::max(max_micro, c.micro());
        if (m_from_choice == 0 && c.expert() > 0 && c.id() >= c.micro()) {
          m_from_choice = (c.id() - c.micro()) / c.expert();
        }
      }
      for (const moe::v1::SharedChoice& s : r.shared())
        n_shared = std::max(n_shared, s.expert() + 1);
      if (!width_exact) width = std::max(width, r.probs_size());
    } else if (event.has_load()) {
      ++used;
      for (const moe::v1::LayerLoad& l : event.load().layers()) {
        n_layers = std::max(n_layers, l.layer() + 1);
        if (l.tokens_size() > 0) {
          width = width_exact ? std::max(width, l.tokens_size()) : l.tokens_size();
          width_exact = true;
        }
      }
    }
  }
  if (used == 0) {
    return absl::NotFoundError(absl::StrCat("no token or load event among ", events.size(),
                                            " events to infer the model layout from"));
  }
  ModelLayout layout;
  layout.flow.granularity = m_from_choice > 0 ? m_from_choice : std::max(1, max_micro + 1);
  const int m = layout.flow.granularity;
  width = std::max(width, max_id + 1);
  layout.flow.n_experts = std::max(1, (width + m - 1) / m);
  layout.flow.n_shared = n_shared;
  layout.flow.top_k = top_k;
  layout.n_layers = n_layers;
  layout.origin = absl::StrCat("inferred from ", used, " events");
  return layout;
}

absl::StatusOr<ModelLayout> TraceLayout(const Trace& trace) {
  if (trace.header.has_value() && trace.header->model.n_experts() > 0) {
    ModelLayout layout = LayoutFromModelInfo(trace.header->model);
    layout.origin = "trace header";
    return layout;
  }
  return InferLayout(trace.events);
}

absl::StatusOr<LoadedTrace> LoadTraceFlag(const std::string& path) {
  absl::StatusOr<Trace> trace = ReadTrace(path);
  if (!trace.ok()) return trace.status();
  absl::StatusOr<ModelLayout> layout = TraceLayout(*trace);
  if (!layout.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--trace: ", path, ": ", layout.status().message()));
  }
  return LoadedTrace{std::move(*trace), std::move(*layout)};
}

}  // namespace moe::viewer
