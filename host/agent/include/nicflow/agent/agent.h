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
// Every pass ("sync") starts from the full input state and recompiles. That is simple and right
// (a sync can never drift from the inputs), and costs O(cluster) per change; the incremental
// compiler (flowtables, in progress) slots in at Agent::ComputeDesired(): it returns the new
// program from the previous one and the change, and the reconciler's diff stays as the safety
// net that makes the device match whatever the program says.
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
#include "nicflow/flowtables/compiler.h"
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
  struct SyncResult;
  absl::StatusOr<flowtables::ClusterState> LoadInputs() const;
  absl::StatusOr<flowtables::CompileResult> ComputeDesired(const flowtables::ClusterState& s);
  absl::Status Fail(std::string_view stage, const absl::Status& st, std::string_view reason);
  void WatchLoop();
  std::vector<host::EntryCounter> CountersFor(const flowtables::Program& p) const;

  AgentConfig config_;
  Backend backend_;
  ClusterSource extra_source_;
  EventLog events_;

  mutable std::mutex mu_;  // guards everything below
  std::unique_ptr<host::Reconciler> reconciler_;
  std::optional<flowtables::CompileResult> desired_;   // last successful compile
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
