#include "clients/viewer/top.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "clients/viewer/cluster_client.h"
#include "clients/viewer/render/terminal_view.h"
#include "clients/viewer/trace.h"

namespace moe::viewer {
namespace {

constexpr absl::Duration kRedrawInterval = absl::Milliseconds(200);
// A live dashboard without --duration_s still gives its subscription a deadline.
constexpr absl::Duration kLiveDeadline = absl::Hours(24);

// Alternate screen, hidden cursor and raw keys for as long as it lives; the destructor puts the
// terminal back however RunTop returns.
class TerminalSession {
 public:
  TerminalSession(std::FILE* out, int in_fd, bool interactive)
      : out_(out), interactive_(interactive) {
    if (!interactive_) return;
    std::fputs("\x1b[?1049h\x1b[?25l\x1b[2J", out_);
    std::fflush(out_);
    if (in_fd >= 0 && isatty(in_fd) && tcgetattr(in_fd, &saved_) == 0) {
      termios raw = saved_;
      // No line buffering or echo, so 'q' arrives at once and is not printed; ISIG stays on so
      // Ctrl-C is still SIGINT, which the main loop collects.
      raw.c_lflag &= ~(ICANON | ECHO);
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      if (tcsetattr(in_fd, TCSANOW, &raw) == 0) in_fd_ = in_fd;
    }
  }
  ~TerminalSession() {
    if (in_fd_ >= 0) tcsetattr(in_fd_, TCSANOW, &saved_);
    if (interactive_) {
      std::fputs("\x1b[0m\x1b[?25h\x1b[?1049l", out_);
      std::fflush(out_);
    }
  }
  TerminalSession(const TerminalSession&) = delete;
  TerminalSession& operator=(const TerminalSession&) = delete;

  // Whether 'q' was typed since the last call.
  bool QuitKey() {
    if (in_fd_ < 0) return false;
    pollfd p = {in_fd_, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) return false;
    char buf[32];
    const ssize_t n = read(in_fd_, buf, sizeof(buf));
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] == 'q' || buf[i] == 'Q') return true;
    }
    return false;
  }

 private:
  std::FILE* out_;
  bool interactive_;
  int in_fd_ = -1;
  termios saved_ = {};
};

void TerminalSize(const TopIo& io, int* width, int* height) {
  *width = io.width;
  *height = io.height;
  winsize ws = {};
  if ((*width <= 0 || *height <= 0) && ioctl(fileno(io.out), TIOCGWINSZ, &ws) == 0 &&
      ws.ws_col > 0 && ws.ws_row > 0) {
    if (*width <= 0) *width = ws.ws_col;
    if (*height <= 0) *height = ws.ws_row;
  }
  if (*width <= 0) *width = 100;
  if (*height <= 0) *height = 30;
}

void DrawInPlace(const std::vector<std::string>& lines, std::FILE* out) {
  // Home, then overwrite each line and clear its tail: no full-screen clear, so no flicker. No
  // line break after the last line, which would scroll the screen.
  std::string frame = "\x1b[H";
  for (size_t i = 0; i < lines.size(); ++i) {
    absl::StrAppend(&frame, lines[i], "\x1b[K", i + 1 < lines.size() ? "\r\n" : "");
  }
  frame += "\x1b[J";
  std::fwrite(frame.data(), 1, frame.size(), out);
  std::fflush(out);
}

std::vector<moe::v1::RoutingEvent> KeepLayers(std::vector<moe::v1::RoutingEvent> events,
                                              const std::vector<int>& layers) {
  if (layers.empty()) return events;
  auto wanted = [&](int layer) { return std::binary_search(layers.begin(), layers.end(), layer); };
  std::vector<moe::v1::RoutingEvent> out;
  for (moe::v1::RoutingEvent& e : events) {
    if (e.has_token() && !wanted(e.token().routing().layer())) continue;
    if (e.has_load()) {
      auto* list = e.mutable_load()->mutable_layers();
      list->erase(std::remove_if(list->begin(), list->end(),
                                 [&](const moe::v1::LayerLoad& l) { return !wanted(l.layer()); }),
                  list->end());
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

absl::Status RunTop(const TopOptions& options, EventSource& source, DashboardModel& model,
                    const TopIo& io) {
  const absl::Time deadline = options.duration_s > 0
                                  ? absl::Now() + absl::Seconds(options.duration_s)
                                  : absl::InfiniteFuture();
  absl::StatusOr<bool> ended;
  {
    TerminalSession terminal(io.out, io.in_fd, io.interactive);
    absl::Time last_draw = absl::InfinitePast();
    bool dirty = true;
    ended = PumpEvents(
        source, deadline, [&] { return terminal.QuitKey(); },
        [&](absl::Time now) {
          if (io.interactive && dirty && now - last_draw >= kRedrawInterval) {
            int width = 0;
            int height = 0;
            TerminalSize(io, &width, &height);  // every frame: the window may have been resized
            DrawInPlace(RenderDashboard(model.State(io.color), width, height), io.out);
            last_draw = now;
            dirty = false;
          }
          return absl::OkStatus();
        },
        [&](const moe::v1::RoutingEvent& event) {
          model.Add(event);
          dirty = true;
          return absl::OkStatus();
        });
  }
  source.Cancel();
  if (!io.interactive) {
    // Pipes and tests get the last frame once, plain unless colour was asked for.
    int width = 0;
    int height = 0;
    TerminalSize(io, &width, &height);
    const std::vector<std::string> lines = RenderDashboard(model.State(io.color), width, height);
    std::fprintf(io.out, "%s\n", absl::StrJoin(lines, "\n").c_str());
    std::fflush(io.out);
  }
  if (!ended.ok()) return ended.status();
  if (*ended) {
    const absl::Status s = source.status();
    if (!s.ok() && model.events() == 0) return s;
    if (!s.ok())
      std::fprintf(stderr, "viewer top: the event stream ended: %s\n", s.ToString().c_str());
  }
  return absl::OkStatus();
}

absl::Status TopCommand(const TopOptions& options) {
  if (absl::Status s = ValidateTopOptions(options); !s.ok()) return s;
  std::unique_ptr<ClusterClient> client;
  std::unique_ptr<EventSource> source;
  std::unique_ptr<DashboardModel> model;
  if (!options.trace.empty()) {
    absl::StatusOr<LoadedTrace> loaded = LoadTraceFlag(options.trace);
    if (!loaded.ok()) return loaded.status();
    Trace* trace = &loaded->trace;
    const ModelLayout* layout = &loaded->layout;
    model = std::make_unique<DashboardModel>(
        layout->name.empty() ? "trace" : layout->name, absl::StrCat("trace ", options.trace),
        layout->flow.granularity, layout->flow.n_experts * layout->flow.granularity);
    source = ReplayEvents(std::make_shared<const std::vector<moe::v1::RoutingEvent>>(
                              KeepLayers(std::move(trace->events), options.watch.layers)),
                          options.speed, /*loop=*/false);
  } else {
    client = std::make_unique<ClusterClient>(options.target, "", options.credentials);
    absl::StatusOr<moe::v1::ModelInfo> info = client->GetModelInfo(absl::Seconds(10));
    if (!info.ok()) return info.status();
    const int m = std::max(1, info->granularity());
    model =
        std::make_unique<DashboardModel>(info->name(), options.target, m, info->n_experts() * m);
    // The placement at start; placement events in the stream keep it current.
    absl::StatusOr<moe::v1::Placement> placement = client->GetPlacement(absl::Seconds(10));
    if (placement.ok()) model->SetPlacement(*placement);
    const absl::Duration life =
        options.duration_s > 0 ? absl::Seconds(options.duration_s + 10) : kLiveDeadline;
    source = WatchCluster(client->orchestrator(), options.watch, absl::Now() + life);
  }
  TopIo io;
  io.out = stdout;
  io.in_fd = STDIN_FILENO;
  io.interactive = isatty(STDOUT_FILENO) != 0;
  const char* term = std::getenv("TERM");
  const bool color_ok = io.interactive && std::getenv("NO_COLOR") == nullptr &&
                        !(term != nullptr && std::string(term) == "dumb");
  io.color = options.color == "always" || (options.color == "auto" && color_ok);
  return RunTop(options, *source, *model, io);
}

}  // namespace moe::viewer
