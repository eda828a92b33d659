// The agent's sync pass and watch loop (queries are in agent_queries.cc).
#include "nicflow/agent/agent.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/loader.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::agent {

namespace {

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

template <typename T>
void Append(std::vector<T>& to, std::vector<T>& from) {
  for (T& x : from) to.push_back(std::move(x));
}

// Adds `extra`'s objects to `s` (the manifests' state); scalar settings in `s` win.
void Merge(flowtables::ClusterState& s, flowtables::ClusterState extra) {
  Append(s.namespaces, extra.namespaces);
  Append(s.pods, extra.pods);
  Append(s.services, extra.services);
  Append(s.endpoint_slices, extra.endpoint_slices);
  Append(s.network_policies, extra.network_policies);
  Append(s.nodes, extra.nodes);
  Append(s.service_cidrs, extra.service_cidrs);
  Append(s.notes, extra.notes);
  if (!s.proxy_config) s.proxy_config = std::move(extra.proxy_config);
  if (!s.masq_config) s.masq_config = std::move(extra.masq_config);
  if (!s.node_facts) s.node_facts = std::move(extra.node_facts);
}

// True when placement put the whole program on the device unchanged (no punts, no cuts, every
// group on the device): the device program is then the compiled program itself.
bool PlacedAsIs(const host::PlacementReport& r) {
  for (const host::TablePlacement& t : r.tables) {
    if (t.on_device != t.entries || t.punt_entries != 0 || t.in_software != 0 || t.catch_all_punt) {
      return false;
    }
  }
  for (const host::GroupPlacement& g : r.groups) {
    if (g.where != host::Where::kDevice) return false;
  }
  return true;
}

// The kubelet lister for the config; a lister that reports why when it cannot be built, so the
// reason shows in `nicflow status` like any other kubelet error.
PodVfLister MakePodVfLister(const InputsConfig& inputs) {
  if (inputs.pod_resources_socket.empty()) return {};
  absl::StatusOr<PodVfLister> lister = KubeletPodVfLister(inputs);
  if (lister.ok()) return *std::move(lister);
  spdlog::error("pod resources: {}", Sv(lister.status().message()));
  return [st = lister.status()]() -> absl::StatusOr<PodVfListing> { return st; };
}

}  // namespace

Agent::Agent(AgentConfig config, Backend backend, ClusterSource extra_source)
    : config_(std::move(config)),
      backend_(std::move(backend)),
      extra_source_(std::move(extra_source)),
      pod_binder_(MakePodVfLister(config_.inputs), config_.inputs.pod_resources_socket),
      reconciler_(std::make_unique<host::Reconciler>(*backend_.device)),
      apply_latency_s_(
          {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}),
      started_unix_ms_(NowUnixMs()) {}

Agent::~Agent() {
  Stop();
  // The reconciler refers to the device; the device may need keepalive: destroy in order.
  reconciler_.reset();
  backend_.device.reset();
}

absl::StatusOr<flowtables::ClusterState> Agent::LoadInputs() const {
  flowtables::ClusterState state;
  if (!config_.inputs.manifests_dir.empty()) {
    NICFLOW_RETURN_IF_ERROR(flowtables::LoadPaths({config_.inputs.manifests_dir}, {}, state));
  }
  if (extra_source_) {
    NICFLOW_ASSIGN_OR_RETURN(flowtables::ClusterState extra, extra_source_());
    Merge(state, std::move(extra));
  }
  return state;
}

absl::Status Agent::Fail(std::string_view stage, const absl::Status& st, std::string_view reason) {
  ++sync_failures_;
  ++errors_by_stage_[std::string(stage)];
  last_error_ = absl::StrCat(Sv(stage), ": ", st.message());
  spdlog::error("sync ({}) failed at {}: {}; the last good program stays installed", reason, stage,
                Sv(st.message()));
  nlohmann::json detail{{"stage", stage}, {"reason", reason}};
  if (stage == "apply") detail["report"] = reconciler_->last_report().ToJson();
  events_.Add(absl::StrCat(Sv(stage), "-failed"), true, last_error_, std::move(detail));
  return st;
}

absl::Status Agent::Sync(std::string_view reason) {
  // Texts first: a file written during the load is then seen as changed by the next sync.
  std::optional<ManifestTexts> texts = ReadManifestTexts();
  absl::StatusOr<flowtables::ClusterState> state = LoadInputs();
  (void)pod_binder_.Refresh();  // a failure is counted and shown; the last bindings stay
  std::lock_guard lock(mu_);
  ++syncs_;
  last_sync_unix_ms_ = NowUnixMs();
  if (!state.ok()) return Fail("load", state.status(), reason);
  for (const std::string& note : state->notes) spdlog::debug("load: {}", note);
  const uint64_t incremental_before = incremental_compiles_;
  absl::StatusOr<Desired> desired = ComputeDesired(*state, texts, reason);
  if (!desired.ok()) return Fail("compile", desired.status(), reason);
  const bool incremental = incremental_compiles_ > incremental_before;
  pod_binder_.Bind(desired->compiled.program.ports);
  absl::StatusOr<host::PlacedProgram> placed = host::Place(
      backend_.device->capabilities(), desired->compiled.program, backend_.device->name());
  if (!placed.ok()) {
    incremental_.reset();  // the compiler is ahead of the device: next time compile in full
    return Fail("place", placed.status(), reason);
  }
  const bool as_is = PlacedAsIs(placed->report);
  flowtables::Program device_program = placed->device;
  absl::StatusOr<host::ConvergeReport> report;
  const bool by_delta =
      desired->delta && as_is && device_holds_program_ && reconciler_->installed().has_value();
  if (by_delta) {
    report = reconciler_->ConvergeDelta(*desired->delta, device_program.ports);
  } else {
    report = reconciler_->Converge(std::move(placed->device));
  }
  last_report_ = reconciler_->last_report();
  if (!report.ok()) {
    // The compiler is ahead of the device now: start over with a full compile and a diff.
    incremental_.reset();
    device_holds_program_ = false;
    return Fail("apply", report.status(), reason);
  }

  // The software path gets the whole program only once the device took its part: a failed apply
  // leaves both as they were. Sent when the program changed or the last send did not succeed.
  if (backend_.set_software_program && (report->ops_total > 0 || report->reinstalled ||
                                        report->ports_changed || !software_program_sent_)) {
    software_program_sent_ = false;
    if (absl::Status st = backend_.set_software_program(desired->compiled.program, syncs_);
        !st.ok()) {
      incremental_.reset();
      device_holds_program_ = false;
      return Fail("software", st, reason);
    }
    software_program_sent_ = true;
  }

  apply_latency_s_.Observe(static_cast<double>(report->total_ns) / 1e9);
  device_ops_ += report->ops_applied;
  desired_ = std::move(desired->compiled);
  desired_device_ = std::move(device_program);
  placement_ = std::move(placed->report);
  device_holds_program_ = as_is;
  last_error_.clear();
  bool changed = report->ops_total > 0 || report->reinstalled || report->ports_changed;
  std::string message = absl::StrCat(
      Sv(reason), ": ", changed ? "" : "unchanged, ", "+", report->entries_added, " ~",
      report->entries_modified, " -", report->entries_deleted, " entries, +", report->groups_added,
      " ~", report->groups_modified, " -", report->groups_deleted, " groups",
      report->read_back ? " (read back from the device)" : "",
      report->reinstalled ? " (reinstalled)" : "", report->ports_changed ? ", ports changed" : "",
      " in ", report->total_ns / 1000, " us",
      incremental ? (by_delta ? ", incremental compile, pushed as its delta"
                              : ", incremental compile, converged by diff")
                  : absl::StrCat(", full compile (", last_full_compile_reason_, ")"));
  spdlog::info("sync {}", message);
  nlohmann::json detail = report->ToJson();
  detail["compile"] = incremental ? "incremental" : "full";
  detail["pushed_delta"] = by_delta;
  events_.Add(changed ? "applied" : "unchanged", false, std::move(message), std::move(detail));
  return absl::OkStatus();
}

absl::Status Agent::Start() {
  if (!config_.metrics_address.empty()) {
    NICFLOW_ASSIGN_OR_RETURN(metrics_, MetricsHttpServer::Start(config_.metrics_address,
                                                                [this] { return MetricsText(); }));
    spdlog::info("metrics on {} (port {})", config_.metrics_address, metrics_->port());
  }
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  if (!config_.inputs.manifests_dir.empty()) {
    inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_fd_ < 0 ||
        ::inotify_add_watch(inotify_fd_, config_.inputs.manifests_dir.c_str(),
                            IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                                IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
      return absl::FailedPreconditionError(absl::StrCat("inputs.manifests ",
                                                        config_.inputs.manifests_dir,
                                                        ": cannot watch: ", std::strerror(errno)));
    }
  }
  events_.Add("started", false,
              absl::StrCat("nicflowd on node ", config_.node.empty() ? "(auto)" : config_.node,
                           ", device ", Sv(backend_.device->name())));
  (void)Sync("start");
  watch_thread_ = std::thread([this] { WatchLoop(); });
  return absl::OkStatus();
}

void Agent::RequestSync() {
  sync_requested_ = true;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof(one));
  }
}

void Agent::Stop() {
  if (!stopping_.exchange(true)) {
    RequestSync();
    if (watch_thread_.joinable()) watch_thread_.join();
    if (metrics_) metrics_->Stop();
    events_.Close();
  }
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  inotify_fd_ = wake_fd_ = -1;
}

uint16_t Agent::metrics_port() const { return metrics_ ? metrics_->port() : 0; }

namespace {

// Drains an fd; true when anything was read.
bool Drain(int fd) {
  if (fd < 0) return false;
  alignas(inotify_event) char buf[4096];
  bool any = false;
  while (::read(fd, buf, sizeof(buf)) > 0) any = true;
  return any;
}

}  // namespace

void Agent::WatchLoop() {
  using Clock = std::chrono::steady_clock;
  auto next_resync = Clock::now() + std::chrono::seconds(config_.resync_s);
  const auto pod_interval = std::chrono::seconds(config_.inputs.pod_resources_interval_s);
  const bool list_pods = pod_binder_.enabled() && pod_interval.count() > 0;
  auto next_pod_list = Clock::now() + pod_interval;
  while (!stopping_) {
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    std::optional<Clock::time_point> wake_at;
    if (config_.resync_s > 0) wake_at = next_resync;
    if (list_pods && (!wake_at || next_pod_list < *wake_at)) wake_at = next_pod_list;
    int timeout_ms = -1;
    if (wake_at) {
      // Rounded up: waking a little early would find no timer due.
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*wake_at - Clock::now());
      timeout_ms = static_cast<int>(std::max<int64_t>(0, left.count()));
    }
    int n = ::poll(fds, inotify_fd_ >= 0 ? 2 : 1, timeout_ms);
    if (stopping_) break;
    if (n < 0 && errno == EINTR) continue;
    const bool resync_due = n == 0 && config_.resync_s > 0 && Clock::now() >= next_resync;
    if (n == 0 && !resync_due) {
      // Only the pod listing timer fired: sync when the kubelet's answer changed the bindings.
      next_pod_list = Clock::now() + pod_interval;
      if (list_pods && pod_binder_.Refresh()) (void)Sync("pod resources changed");
      continue;
    }
    bool files = Drain(inotify_fd_);
    Drain(wake_fd_);
    // Let a burst of writes (an editor, a ConfigMap swap, `cp -r`) settle before reloading.
    while (files && !stopping_) {
      pollfd p{inotify_fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(config_.debounce_ms)) <= 0) break;
      Drain(inotify_fd_);
    }
    if (stopping_) break;
    if (files) {
      (void)Sync("manifests changed");
    } else if (sync_requested_.exchange(false)) {
      (void)Sync("inputs changed");
    } else if (n == 0) {
      (void)Sync("resync");
    } else {
      continue;
    }
    next_resync = Clock::now() + std::chrono::seconds(config_.resync_s);
  }
}

}  // namespace nicflow::agent
