// Shared fixtures for the device plugin tests: temporary directories, card layouts and a
// daemon wired to a fake kubelet and a fake sysfs tree.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "fake_kubelet.h"
#include "fake_sysfs.h"
#include "nicflow/device_plugin/daemon.h"

namespace nicflow::device_plugin::testing {

using namespace std::chrono_literals;

/// A fresh directory under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// Replaces `path` atomically (write a temporary file, rename), like editors and kubectl do.
void WriteFileAtomically(const std::filesystem::path& path, const std::string& text);

/// ConnectX-6 Dx-like PF (15b3:101d, VFs 15b3:101e) with RDMA on every VF.
FakePf ConnectXPf(const std::string& address, const std::string& netdev, int num_vfs,
                  int numa_node = 0);
/// Intel E810-like PF (8086:1593 ... VFs 8086:1889) with VFs bound to vfio-pci.
FakePf E810VfioPf(const std::string& address, const std::string& netdev, int num_vfs,
                  int numa_node = 0, int first_iommu_group = 100);

/// A daemon on a fake tree, a fake kubelet and temporary kubelet/config directories.
class PluginEnv {
 public:
  PluginEnv();
  ~PluginEnv();

  FakeSysfs& sysfs() { return sysfs_; }
  FakeKubelet& kubelet() { return *kubelet_; }
  Daemon& daemon() { return *daemon_; }
  const std::filesystem::path& kubelet_dir() const { return kubelet_dir_; }
  const std::filesystem::path& registry_dir() const { return registry_dir_; }
  const std::filesystem::path& config_path() const { return config_path_; }
  const std::filesystem::path& cdi_dir() const { return cdi_dir_; }

  /// Options pointing at this environment; poll interval 60 s so that tests prove inotify
  /// (not polling) delivers changes.
  DaemonOptions Options() const;
  /// Writes `config` and starts the kubelet (unless `start_kubelet` is false) and a daemon.
  absl::Status Start(const std::string& config, DaemonOptions options, bool start_kubelet = true);
  absl::Status Start(const std::string& config) { return Start(config, Options()); }
  void StopDaemon();

 private:
  TempDir temp_;
  std::filesystem::path kubelet_dir_;
  std::filesystem::path registry_dir_;
  std::filesystem::path config_path_;
  std::filesystem::path cdi_dir_;
  FakeSysfs sysfs_;
  std::unique_ptr<FakeKubelet> kubelet_;
  std::unique_ptr<Daemon> daemon_;
};

/// Health of `id` in `devices`, "" when absent.
std::string HealthOf(const DeviceList& devices, const std::string& id);

}  // namespace nicflow::device_plugin::testing
