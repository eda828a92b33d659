// ApiSource: the watch threads, the debounced snapshot thread, and their shutdown.
#include "nicflow/k8s/api_source.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "kind_watcher.h"
#include "nicflow/flowtables/status.h"
#include "object_store.h"

namespace nicflow::k8s {

std::string_view ResourceKindName(ResourceKind kind) { return internal::InfoOf(kind).name; }

std::vector<ResourceKind> AllResourceKinds() {
  return {ResourceKind::kNamespace,     ResourceKind::kPod,           ResourceKind::kService,
          ResourceKind::kEndpointSlice, ResourceKind::kNetworkPolicy, ResourceKind::kNode,
          ResourceKind::kServiceCidr};
}

namespace {

using Clock = std::chrono::steady_clock;

class ApiSourceImpl final : public ApiSource {
 public:
  ApiSourceImpl(ApiConfig config, HttpTarget target, WatchOptions options,
                SnapshotCallback on_change, EventCallback on_event)
      : on_snapshot_(std::move(on_change)), on_event_(std::move(on_event)) {
    ctx_.config = std::move(config);
    ctx_.target = std::move(target);
    ctx_.options = std::move(options);
    ctx_.store = &store_;
    ctx_.notify_changed = [this] { NotifyChanged(); };
    ctx_.notify_synced = [this] { NotifySynced(); };
    if (on_event_) ctx_.on_change = [this](const internal::ObjectStore::Change& c) { Deliver(c); };
  }
  ~ApiSourceImpl() override { Stop(); }

  void Begin();
  ApiSourceStats Stats() const override;
  bool Synced() const override;
  void Stop() override;

 private:
  void NotifyChanged();
  void NotifySynced();
  void Deliver(const internal::ObjectStore::Change& c);
  void SnapshotLoop();

  internal::WatchContext ctx_;
  internal::ObjectStore store_;
  SnapshotCallback on_snapshot_;
  flowtables::ClusterState state_;  // the last snapshot; only the snapshot thread touches it
  EventCallback on_event_;
  std::mutex event_mu_;  // serializes on_event_ across watch threads

  std::vector<std::unique_ptr<internal::KindWatcher>> watchers_;
  std::vector<std::thread> threads_;
  std::mutex stop_mu_;  // one Stop() at a time

  mutable std::mutex mu_;  // guards what follows
  std::condition_variable cv_;
  bool stopping_ = false;
  bool dirty_ = false;
  size_t synced_ = 0;
  Clock::time_point first_change_, last_change_;
  uint64_t snapshots_ = 0;
};

void ApiSourceImpl::Begin() {
  std::vector<ResourceKind> kinds = ctx_.options.kinds;
  std::sort(kinds.begin(), kinds.end());
  kinds.erase(std::unique(kinds.begin(), kinds.end()), kinds.end());
  uint64_t seed = ctx_.options.jitter_seed != 0
                      ? ctx_.options.jitter_seed
                      : static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  for (ResourceKind kind : kinds) {
    watchers_.push_back(std::make_unique<internal::KindWatcher>(ctx_, kind, seed++));
  }
  threads_.emplace_back([this] { SnapshotLoop(); });
  for (auto& w : watchers_) threads_.emplace_back([w = w.get()] { w->Run(); });
}

void ApiSourceImpl::NotifyChanged() {
  std::lock_guard<std::mutex> lock(mu_);
  Clock::time_point now = Clock::now();
  if (!dirty_) first_change_ = now;
  dirty_ = true;
  last_change_ = now;
  cv_.notify_all();
}

void ApiSourceImpl::NotifySynced() {
  std::lock_guard<std::mutex> lock(mu_);
  if (++synced_ == watchers_.size() && !dirty_) {
    // The first snapshot is due even when the cluster is empty.
    dirty_ = true;
    first_change_ = last_change_ = Clock::now();
  }
  cv_.notify_all();
}

void ApiSourceImpl::Deliver(const internal::ObjectStore::Change& c) {
  std::lock_guard<std::mutex> lock(event_mu_);
  ObjectEvent ev;
  ev.type = c.type;
  ev.kind = c.kind;
  ev.ns = c.ns;
  ev.name = c.name;
  ev.resource_version = c.resource_version;
  ev.object = &c.object;
  ev.previous = c.previous ? &*c.previous : nullptr;
  on_event_(ev);
}

void ApiSourceImpl::SnapshotLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || (dirty_ && synced_ == watchers_.size()); });
    if (stopping_) return;
    // Debounce: wait for `debounce` of quiet, but not beyond `max_delay` after the first change.
    for (;;) {
      Clock::time_point deadline =
          std::min(last_change_ + ctx_.options.debounce, first_change_ + ctx_.options.max_delay);
      if (Clock::now() >= deadline) break;
      cv_.wait_until(lock, deadline);
      if (stopping_) return;
    }
    dirty_ = false;
    ++snapshots_;
    lock.unlock();
    store_.Refresh(state_);
    on_snapshot_(state_);
    lock.lock();
  }
}

ApiSourceStats ApiSourceImpl::Stats() const {
  ApiSourceStats s;
  for (const auto& w : watchers_) s.kinds.push_back(w->Stats());
  s.rejected = store_.Rejected();
  std::lock_guard<std::mutex> lock(mu_);
  s.snapshots = snapshots_;
  return s;
}

bool ApiSourceImpl::Synced() const {
  std::lock_guard<std::mutex> lock(mu_);
  return synced_ == watchers_.size();
}

void ApiSourceImpl::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  for (auto& w : watchers_) w->Stop();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

absl::Status Validate(const WatchOptions& o) {
  if (o.kinds.empty()) return absl::InvalidArgumentError("WatchOptions.kinds: empty");
  if (o.debounce.count() < 0 || o.max_delay < o.debounce) {
    return absl::InvalidArgumentError(absl::StrCat("WatchOptions: debounce ", o.debounce.count(),
                                                   " ms must be in 0..max_delay (",
                                                   o.max_delay.count(), " ms)"));
  }
  if (o.initial_backoff.count() <= 0 || o.max_backoff < o.initial_backoff) {
    return absl::InvalidArgumentError(
        "WatchOptions: initial_backoff must be positive and at most max_backoff");
  }
  if (o.list_page_size == 0) return absl::InvalidArgumentError("WatchOptions.list_page_size: 0");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ApiSource>> ApiSource::Start(ApiConfig config, WatchOptions options,
                                                            SnapshotCallback on_change,
                                                            EventCallback on_event) {
  if (!on_change) return absl::InvalidArgumentError("ApiSource::Start: on_change is empty");
  NICFLOW_RETURN_IF_ERROR(Validate(options));
  NICFLOW_ASSIGN_OR_RETURN(HttpTarget target, HttpTarget::Parse(config.server));
  auto source =
      std::make_unique<ApiSourceImpl>(std::move(config), std::move(target), std::move(options),
                                      std::move(on_change), std::move(on_event));
  source->Begin();
  return source;
}

absl::StatusOr<std::unique_ptr<ApiSource>> ApiSource::Start(ApiConfig config,
                                                            SnapshotCallback on_change) {
  return Start(std::move(config), WatchOptions{}, std::move(on_change));
}

}  // namespace nicflow::k8s
