#include "services/orchestrator/event_hub.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "models/splitmix.h"

namespace moe {
namespace {

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

std::shared_ptr<const std::string> Serialized(const moe::v1::RoutingEvent& event) {
  return std::make_shared<const std::string>(event.SerializeAsString());
}

}  // namespace

void LoadBalance(const std::vector<int64_t>& micro, int granularity, double* cv,
                 double* max_over_mean) {
  std::vector<double> base(micro.size() / granularity, 0.0);
  for (size_t i = 0; i < micro.size(); ++i) base[i / granularity] += micro[i];
  double mean = 0, mx = 0;
  for (double v : base) mean += v, mx = std::max(mx, v);
  mean /= std::max<size_t>(1, base.size());
  double var = 0;
  for (double v : base) var += (v - mean) * (v - mean);
  var /= std::max<size_t>(1, base.size());
  *cv = mean > 0 ? std::sqrt(var) / mean : 0;
  *max_over_mean = mean > 0 ? mx / mean : 0;
}

bool EventHub::Subscriber::PopBatch(size_t max_events, std::string* wire) {
  std::vector<std::shared_ptr<const std::string>> batch;
  uint64_t dropped;
  {
    absl::MutexLock lock(&mu_);
    if (queue_.empty()) return false;
    const size_t n = std::min(max_events, queue_.size());
    batch.assign(std::make_move_iterator(queue_.begin()),
                 std::make_move_iterator(queue_.begin() + static_cast<std::ptrdiff_t>(n)));
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    dropped = dropped_;
  }
  // WatchRoutingResponse by hand, outside the lock: field 1 (events) once per event as tag,
  // length, bytes; then field 2 (dropped) as a varint.
  size_t size = 11;
  for (const auto& ev : batch) size += ev->size() + 6;
  wire->clear();
  wire->reserve(size);
  for (const auto& ev : batch) {
    wire->push_back(static_cast<char>(0x0a));
    AppendVarint(ev->size(), wire);
    wire->append(*ev);
  }
  if (dropped > 0) {
    wire->push_back(static_cast<char>(0x10));
    AppendVarint(dropped, wire);
  }
  return true;
}

uint64_t EventHub::Subscriber::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

EventHub::EventHub(const ModelConfig& config, prometheus::Registry& registry, int max_subscribers)
    : config_(config),
      max_subscribers_(max_subscribers),
      counts_(static_cast<size_t>(config.n_layers) * config.n_routed()) {
  subscribers_gauge_ = &prometheus::BuildGauge()
                            .Name("moe_event_subscribers")
                            .Help("WatchRouting streams open now")
                            .Register(registry)
                            .Add({});
  dropped_counter_ = &prometheus::BuildCounter()
                          .Name("moe_events_dropped_total")
                          .Help("Routing events dropped because a subscriber's queue was full")
                          .Register(registry)
                          .Add({});
  snapshot_thread_ = std::thread([this] { SnapshotLoop(); });
  delivery_thread_ = std::thread([this] { DeliveryLoop(); });
}

EventHub::~EventHub() {
  stop_.Notify();
  {
    absl::MutexLock lock(&wake_mu_);
    stopping_ = true;
  }
  snapshot_thread_.join();
  delivery_thread_.join();
}

void EventHub::DeliveryLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&wake_mu_);
      wake_mu_.Await(absl::Condition(
          +[](EventHub* h) ABSL_EXCLUSIVE_LOCKS_REQUIRED(h->wake_mu_) {
            return h->stopping_ || !h->to_wake_.empty();
          },
          this));
      if (stopping_) return;
    }
    // Let the rest of this decode step's events join the batch.
    absl::SleepFor(kLinger);
    std::vector<std::weak_ptr<Subscriber>> wake;
    {
      absl::MutexLock lock(&wake_mu_);
      wake.swap(to_wake_);
    }
    for (const auto& w : wake) {
      if (auto sub = w.lock(); sub != nullptr && sub->wake_) sub->wake_();
    }
  }
}

absl::StatusOr<std::shared_ptr<EventHub::Subscriber>> EventHub::Subscribe(
    const moe::v1::WatchRoutingRequest& req, std::function<void()> wake) {
  if (!(req.sample_rate() >= 0 && req.sample_rate() <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample_rate: must be in (0, 1] (0 = all), got ", req.sample_rate()));
  }
  if (req.snapshot_interval_ms() < 0 ||
      (req.snapshot_interval_ms() > 0 && req.snapshot_interval_ms() < 50)) {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot_interval_ms: must be 0 or >= 50, got ", req.snapshot_interval_ms()));
  }
  if (req.queue_size() < 0 || req.queue_size() > 1'000'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue_size: must be in [0, 1000000], got ", req.queue_size()));
  }
  auto sub = std::make_shared<Subscriber>();
  for (int l : req.layers()) {
    if (l < 0 || l >= config_.n_layers) {
      return absl::InvalidArgumentError(
          absl::StrCat("layers: ", l, " out of range [0, ", config_.n_layers, ")"));
    }
    sub->layers_.insert(l);
  }
  sub->filter_ = req;
  sub->capacity_ = req.queue_size() > 0 ? req.queue_size() : 4096;
  sub->wake_ = std::move(wake);
  if (req.snapshot_interval_ms() > 0) {
    sub->last_counts_.resize(counts_.size());
    for (size_t i = 0; i < counts_.size(); ++i) sub->last_counts_[i] = counts_[i].load();
    sub->last_snapshot_ = absl::Now();
    sub->next_snapshot_ = sub->last_snapshot_ + absl::Milliseconds(req.snapshot_interval_ms());
    sub->last_tokens_ = tokens_.load();
  }
  absl::MutexLock lock(&mu_);
  if (static_cast<int>(subs_.size()) >= max_subscribers_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("WatchRouting: ", subs_.size(),
                     " streams open, at most --max_watchers=", max_subscribers_, "; retry later"));
  }
  if (req.snapshot_interval_ms() == 0) token_subscribers_.fetch_add(1);
  subs_.push_back(sub);
  subscribers_gauge_->Set(static_cast<double>(subs_.size()));
  return sub;
}

void EventHub::Unsubscribe(const std::shared_ptr<Subscriber>& sub) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < subs_.size(); ++i) {
    if (subs_[i] == sub) {
      if (sub->filter_.snapshot_interval_ms() == 0) token_subscribers_.fetch_sub(1);
      subs_.erase(subs_.begin() + i);
      break;
    }
  }
  subscribers_gauge_->Set(static_cast<double>(subs_.size()));
}

void EventHub::CountRouting(int layer, const std::vector<int32_t>& ids) {
  const size_t base = static_cast<size_t>(layer) * config_.n_routed();
  for (int32_t id : ids) {
    if (id >= 0) counts_[base + id].fetch_add(1, std::memory_order_relaxed);
  }
}

void EventHub::Push(const std::shared_ptr<Subscriber>& sub,
                    std::shared_ptr<const std::string> event) {
  bool was_empty;
  {
    absl::MutexLock lock(&sub->mu_);
    was_empty = sub->queue_.empty();
    if (sub->queue_.size() >= sub->capacity_) {
      sub->queue_.pop_front();
      ++sub->dropped_;
      dropped_counter_->Increment();
    }
    sub->queue_.push_back(std::move(event));
  }
  if (was_empty && sub->wake_) {
    absl::MutexLock lock(&wake_mu_);
    to_wake_.push_back(sub);
  }
}

void EventHub::PublishToken(const std::string& request_id, int position, int layer,
                            const std::function<moe::v1::RoutingEvent(bool)>& make) {
  if (!has_token_subscribers()) return;
  std::vector<std::shared_ptr<Subscriber>> targets;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& s : subs_) {
      const auto& f = s->filter_;
      if (f.snapshot_interval_ms() > 0) continue;
      if (!f.request_id().empty() && f.request_id() != request_id) continue;
      if (!s->layers_.empty() && !s->layers_.count(layer)) continue;
      if (f.sample_rate() > 0 && f.sample_rate() < 1) {
        // Per token, not per event: a sampled token keeps all its layers.
        const uint64_t h = SplitMix64(std::hash<std::string>()(request_id) ^ SplitMix64(position));
        if (static_cast<double>(h >> 11) * 0x1.0p-53 >= f.sample_rate()) continue;
      }
      targets.push_back(s);
    }
  }
  if (targets.empty()) return;
  std::shared_ptr<const std::string> plain, with_probs;
  for (const auto& s : targets) {
    const bool probs = s->filter_.include_probs();
    auto& ev = probs ? with_probs : plain;
    if (ev == nullptr) ev = Serialized(make(probs));
    Push(s, ev);
  }
}

void EventHub::PublishLifecycle(const std::string& request_id, const moe::v1::RoutingEvent& event) {
  std::vector<std::shared_ptr<Subscriber>> targets;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& s : subs_) {
      if (s->filter_.snapshot_interval_ms() > 0) continue;
      if (!s->filter_.request_id().empty() && s->filter_.request_id() != request_id) continue;
      targets.push_back(s);
    }
  }
  if (targets.empty()) return;
  auto shared = Serialized(event);
  for (const auto& s : targets) Push(s, shared);
}

void EventHub::SnapshotLoop() {
  while (!stop_.WaitForNotificationWithTimeout(absl::Milliseconds(25))) {
    std::vector<std::shared_ptr<Subscriber>> due;
    const absl::Time now = absl::Now();
    {
      absl::MutexLock lock(&mu_);
      for (const auto& s : subs_) {
        if (s->filter_.snapshot_interval_ms() > 0 && now >= s->next_snapshot_) due.push_back(s);
      }
    }
    for (const auto& s : due) {
      moe::v1::RoutingEvent ev;
      ev.set_time_unix_micros(NowMicros());
      moe::v1::LoadSnapshot* snap = ev.mutable_load();
      const double seconds = absl::ToDoubleSeconds(now - s->last_snapshot_);
      snap->set_interval_ms(static_cast<int64_t>(seconds * 1000));
      const int64_t tokens = tokens_.load();
      snap->set_tokens_per_second(seconds > 0 ? (tokens - s->last_tokens_) / seconds : 0);
      s->last_tokens_ = tokens;
      for (int l = 0; l < config_.n_layers; ++l) {
        if (!s->layers_.empty() && !s->layers_.count(l)) continue;
        moe::v1::LayerLoad* load = snap->add_layers();
        load->set_layer(l);
        std::vector<int64_t> delta(config_.n_routed());
        for (int e = 0; e < config_.n_routed(); ++e) {
          const size_t i = static_cast<size_t>(l) * config_.n_routed() + e;
          const int64_t c = counts_[i].load();
          delta[e] = c - s->last_counts_[i];
          s->last_counts_[i] = c;
          load->add_tokens(delta[e]);
        }
        double cv, mm;
        LoadBalance(delta, config_.granularity, &cv, &mm);
        load->set_cv(cv);
        load->set_max_over_mean(mm);
      }
      s->last_snapshot_ = now;
      s->next_snapshot_ = now + absl::Milliseconds(s->filter_.snapshot_interval_ms());
      Push(s, Serialized(ev));
    }
  }
}

}  // namespace moe
