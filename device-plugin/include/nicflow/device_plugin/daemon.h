// The device plugin daemon: discovery, health, config reload and kubelet registration.
//
// Design. One control thread owns all mutable state and runs a poll() loop over
//   * one inotify instance watching the kubelet directory (kubelet.sock re-created, our socket
//     deleted), the config file's directory (ConfigMap updates swap a `..data` symlink) and the
//     sysfs directories of every SR-IOV PF, VF and PF netdev (fake trees in tests; on real sysfs
//     few attributes raise events, hence the next two sources);
//   * a NETLINK_ROUTE socket for link changes (real sysfs only);
//   * a poll timer (default 500 ms) that rescans sysfs anyway, bounding health latency on real
//     hardware to one interval;
//   * an eventfd to stop.
// A rescan folds the scan into the DeviceTracker, splits devices across resources and publishes
// each resource's list to its ResourcePool; gRPC handler threads only read immutable pool
// snapshots, so Allocate never waits on discovery.
//
// Each resource gets its own gRPC server on `<dir>/<prefix>_<name>.sock` (kubelet registration
// is per endpoint). In kubelet mode it registers on `<kubelet-dir>/kubelet.sock`; when the
// kubelet restarts (our socket deleted, kubelet.sock re-created) the server is restarted and
// registration retried at 100 ms, doubling to 5 s, until it succeeds. In plugin-watcher mode the
// socket lives in plugins_registry and the kubelet calls GetInfo itself.
//
// Thread safety: Create/Start/Stop from one thread; Status() from any thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nicflow::device_plugin {

enum class RegistrationMode {
  kKubelet,        ///< Register on <kubelet_dir>/kubelet.sock (all kubelet versions).
  kPluginWatcher,  ///< Socket in plugins_registry; the kubelet's plugin watcher registers us.
};

struct DaemonOptions {
  std::filesystem::path config_path;
  std::filesystem::path kubelet_dir = "/var/lib/kubelet/device-plugins";
  std::filesystem::path plugins_registry_dir = "/var/lib/kubelet/plugins_registry";
  std::filesystem::path sysfs_root = "/sys";
  RegistrationMode registration_mode = RegistrationMode::kKubelet;
  /// Prefix of resources whose config has no resourcePrefix.
  std::string default_prefix = "nicflow.io";
  /// Rescan period; bounds health latency where sysfs raises no inotify events.
  std::chrono::milliseconds poll_interval{500};
  /// Answer Allocate with CDI device names and keep spec files in `cdi_dir`.
  bool use_cdi = false;
  std::filesystem::path cdi_dir = "/var/run/cdi";
  /// Subscribe to netlink link events; by default only when sysfs_root is "/sys".
  std::optional<bool> watch_netlink;
};

/// Per-resource state, for logs, tests and the benchmark.
struct ResourceStatus {
  std::string resource_name;
  std::filesystem::path socket_path;
  bool registered = false;
  int registrations = 0;
  int devices = 0;
  int healthy = 0;
};

class Daemon {
 public:
  /// Loads and validates the config and reads sysfs once; serves nothing yet.
  /// Errors: the config's (InvalidArgument naming the JSON path, NotFound for the file),
  /// NotFound when the sysfs root has no bus/pci/devices, FailedPrecondition when a
  /// directory to listen in is missing.
  static absl::StatusOr<std::unique_ptr<Daemon>> Create(DaemonOptions options);

  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  /// Starts the resource servers and the control thread (which registers with the kubelet).
  /// Errors: Unavailable when a socket cannot be bound.
  absl::Status Start();

  /// Stops the control thread and the servers and removes our sockets. Idempotent.
  void Stop();

  std::vector<ResourceStatus> Status() const;

 private:
  class Impl;
  explicit Daemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nicflow::device_plugin
