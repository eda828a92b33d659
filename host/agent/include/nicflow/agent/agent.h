// nicflowd: the node agent that keeps the node's offload device programmed as the cluster
// changes, and answers the online `nicflow` CLI.
//
// Data flow
// ---------
//   inputs (manifests dir, watched with inotify; Kubernetes API list+watch via nicflow::k8s)
//     -> flowtables::ClusterState -> flowtables::Compile (for this node)
//     -> host::Place (what the device can hold / express; the rest is punted to software)
//     -> host::Reconciler::Converge(device program): diff against what the device holds, push
//        the delta make-before-break, all or nothing, rolled back on failure.
// Every pass ("sync") loads the full input state (so a bad manifest is caught and reported the
// same way whatever changed). Compiling is incremental (Agent::ComputeDesired): the agent keeps
// a flowtables::IncrementalCompiler and the text of every manifest file it compiled; the files
// whose text changed are loaded on their own and their objects become ObjectChanges (deleted,
// added, updated), which the compiler turns into the program's delta. A change of exactly one
// object, on a device that holds the program as it is (nothing placed in software), goes to the
// device as that delta (Reconciler::ConvergeDelta), skipping the whole-program diff. Otherwise
// the placed program is converged by diff as before. The full compile (and a fresh incremental
// compiler) is the fallback and the safety net: the first sync, every resync, any change of a
// kind the incremental compiler does not take per object (Node, ServiceCIDR, proxy settings),
// objects from another input source (the Kubernetes API), and any error on the incremental path.
// Each sync's path is counted (StatusJson "compile") and named in its event.
//
// Pod ports and VFs: every sync (and every inputs.pod_resources_interval_s) lists the kubelet's
// pod resources (PodBinder, pod_binding.h) and writes each pod port's VF into the compiled
// program's port declarations before placement; a binding change alone is a sync that only
// redeclares ports. Without the kubelet the agent keeps working on symbolic ports.
//
// Failure handling: a manifest that does not load, a cluster that does not compile, a placement
// or apply error is logged, counted (nicflow_sync_errors_total{stage}), recorded as an event
// (EventLog, streamed by the Events RPC) and changes nothing: the last good program stays
// installed (the reconciler rolled any partial apply back). The next change or resync retries.
//
// Restart without flush: the device keeps its state when the agent exits (a real NIC does; the
// simulator lives in its own process, `nicflow-simnic`, served over a unix socket). A new
// agent's first Converge reads the device back and pushes only the difference, so an unchanged
// cluster costs zero device ops and established connections, counters and entries survive.
//
// Serving: the gRPC control API (control_server.h) on a unix socket, mode 0600 by default, and a
// Prometheus text endpoint (metrics.h). Their handlers call the Agent's query methods, which
// return the JSON the CLI prints with `-o json` (docs/agent.md documents each form).
//
// Threads and locking: one sync thread runs the watch loop and every sync; RPC and scrape
// threads call the query methods. `mu_` guards the device, the reconciler and the last-sync
// state, so a query never sees a half-finished sync and the Device is used by one thread at a
// time, as its contract requires. A long sync delays queries; it never interleaves with them.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "nicflow/agent/config.h"
#include "nicflow/agent/events.h"
#include "nicflow/agent/metrics.h"
#include "nicflow/agent/pod_binding.h"
#include "nicflow/flowtables/compiler.h"
#include "nicflow/flowtables/incremental.h"
#include "nicflow/flowtables/model.h"
#include "nicflow/host/device.h"
#include "nicflow/host/placement.h"
#include "nicflow/host/reconciler.h"
#include "nicflow/sim/device.h"

namespace nicflow::agent {

/// Datapath-wide figures a backend may know beyond host::Device (the simulator does).
struct DeviceStats {
  uint64_t rx_packets = 0, forwarded = 0, dropped = 0, rejected = 0, punted = 0;
  uint64_t conntrack_entries = 0;
  uint64_t conntrack_capacity = 0;
  /// The software path behind the device (nicflow-simnic); `software_path` false: none.
  bool software_path = false;
  uint64_t software_packets = 0, software_forwarded = 0, software_dropped = 0;
  uint64_t software_resumed = 0, software_steered = 0, software_conntrack_entries = 0;
  uint64_t software_program_version = 0;
};

/// The device the agent drives, with the optional extras some backends offer.
struct Backend {
  std::unique_ptr<host::Device> device;
  /// Conntrack size and packet totals; unset when the backend cannot tell.
  std::function<absl::StatusOr<DeviceStats>()> stats;
  /// Many entry counters in one call (a remote device answers in one round trip); unset: the
  /// agent asks Device::GetEntryCounter per entry. Result order follows `keys`; a key not
  /// installed reads as zero.
  std::function<absl::StatusOr<std::vector<host::EntryCounter>>(
      const std::vector<std::string>& keys)>
      entry_counters;
  /// Hands the whole (unplaced) program to the device's software path, which finishes what the
  /// device punts; unset when the backend has none. Called after each successful apply.
  std::function<absl::Status(const flowtables::Program& whole, uint64_t version)>
      set_software_program;
  /// Things the device needs kept alive (e.g. the DPDK EAL), destroyed after it.
  std::shared_ptr<void> keepalive;
};

/// Builds the backend the config names. Errors: those of opening the device (Unavailable when a
/// simnic socket does not answer, NotFound for an unknown profile), Unimplemented for a backend
/// this build lacks.
absl::StatusOr<Backend> OpenBackend(const BackendConfig& config);

/// A cluster snapshot from a source other than the manifests directory (the Kubernetes API).
/// Called on every sync; returns the objects to add to the manifests' state.
using ClusterSource = std::function<absl::StatusOr<flowtables::ClusterState>()>;

/// A packet to trace through the installed program (the control API's Trace request).
struct TraceQuery {
  std::string proto = "tcp";     ///< tcp, udp, sctp
  std::string src;               ///< IP[:PORT] ([v6]:port)
  std::string dst;               ///< IP:PORT
  std::string in_port = "auto";  ///< auto, host, uplink, vf:ns/pod
};

class Agent {
 public:
  /// The agent does nothing until Start() or Sync(). `extra_source` may be empty.
  Agent(AgentConfig config, Backend backend, ClusterSource extra_source = {});
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  /// Runs the first sync, then starts the watch thread (inotify on the manifests directory,
  /// resync timer) and, when configured, the metrics endpoint. The control server is separate
  /// (ControlServer). A failed first sync is reported like any other, not fatal: the device keeps
  /// what it holds. Errors: the manifests directory cannot be watched; the metrics address
  /// cannot be bound.
  [[nodiscard]] absl::Status Start();
  /// Stops the threads; the device keeps its state. Idempotent.
  void Stop();
  /// Asks the watch thread for a sync soon (an input source saw a change). Thread-safe.
  void RequestSync();

  /// One sync pass now (load inputs, compile, place, converge), on the caller's thread. Returns
  /// the failure it recorded, if any.
  absl::Status Sync(std::string_view reason);

  // ---- Queries (JSON forms documented in docs/agent.md) ----
  nlohmann::json StatusJson() const;
  /// Installed tables and entries with counters; `table` empty = all. Errors: NotFound for an
  /// unknown table name.
  absl::StatusOr<nlohmann::json> DumpFlowsJson(std::string_view table) const;
  nlohmann::json StatsJson() const;
  /// Desired (last successful compile) against what the device reports installed now.
  absl::StatusOr<nlohmann::json> DiffJson() const;
  nlohmann::json CapacityJson() const;
  /// Errors: InvalidArgument for a bad packet description, FailedPrecondition when nothing is
  /// installed, NotFound for an unknown port.
  absl::StatusOr<nlohmann::json> TraceJson(const TraceQuery& q) const;
  /// The installed program as ProgramToJson, with placement per table (for `pipeline -o dot`).
  nlohmann::json PipelineJson() const;
  std::string MetricsText() const;

  EventLog& events() { return events_; }
  uint16_t metrics_port() const;
  const AgentConfig& config() const { return config_; }

 private:
  /// Manifest file path -> its text, as last compiled.
  using ManifestTexts = std::map<std::string, std::string>;
  /// The program to install, and the delta from the previous one when exactly one object changed
  /// and was compiled incrementally.
  struct Desired {
    flowtables::CompileResult compiled;
    std::optional<flowtables::Delta> delta;
  };

  absl::StatusOr<flowtables::ClusterState> LoadInputs() const;
  /// The manifests directory's files and texts; nullopt when it cannot be read.
  std::optional<ManifestTexts> ReadManifestTexts() const;
  /// Compiles `s` (loaded from `texts`) incrementally when it can, else in full (see the design
  /// notes). Errors: those of the full compile; the incremental state is then dropped.
  absl::StatusOr<Desired> ComputeDesired(const flowtables::ClusterState& s,
                                         const std::optional<ManifestTexts>& texts,
                                         std::string_view reason);
  /// The object changes between the last compiled texts and `texts`. Errors: Unimplemented
  /// when a changed file holds kinds the incremental compiler does not take per object; the
  /// loader's errors.
  absl::StatusOr<std::vector<flowtables::ObjectChange>> ChangesSince(
      const ManifestTexts& texts) const;
  absl::Status Fail(std::string_view stage, const absl::Status& st, std::string_view reason);
  void WatchLoop();
  std::vector<host::EntryCounter> CountersFor(const flowtables::Program& p) const;

  AgentConfig config_;
  Backend backend_;
  ClusterSource extra_source_;
  EventLog events_;
  PodBinder pod_binder_;  // internally locked

  mutable std::mutex mu_;  // guards everything below
  std::unique_ptr<host::Reconciler> reconciler_;
  std::optional<flowtables::CompileResult> desired_;              // last successful compile
  std::unique_ptr<flowtables::IncrementalCompiler> incremental_;  // compiled manifest_texts_
  ManifestTexts manifest_texts_;
  bool device_holds_program_ = false;   // the last placement put the whole program on the device
  bool software_program_sent_ = false;  // the software path runs the current whole program
  uint64_t incremental_compiles_ = 0, full_compiles_ = 0;
  std::string last_full_compile_reason_;
  std::optional<flowtables::Program> desired_device_;  // its device part (as placed)
  mutable std::unique_ptr<sim::SimNic> trace_nic_;     // desired_ installed, for Trace
  mutable uint64_t trace_nic_sync_ = 0;
  std::optional<host::PlacementReport> placement_;
  std::optional<host::ConvergeReport> last_report_;
  std::string last_error_;
  uint64_t syncs_ = 0, sync_failures_ = 0, device_ops_ = 0;
  std::map<std::string, uint64_t> errors_by_stage_;
  Histogram apply_latency_s_;
  int64_t started_unix_ms_ = 0, last_sync_unix_ms_ = 0;

  std::unique_ptr<MetricsHttpServer> metrics_;
  std::thread watch_thread_;
  int inotify_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> sync_requested_{false};
};

}  // namespace nicflow::agent
