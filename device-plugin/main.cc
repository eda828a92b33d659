// nicflow-device-plugin: advertises SR-IOV VFs to the kubelet. A thin CLI over
// nicflow::device_plugin::Daemon; see docs/device-plugin.md.
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <map>

#include "CLI/CLI.hpp"
#include "nicflow/device_plugin/config.h"
#include "nicflow/device_plugin/daemon.h"
#include "nicflow/device_plugin/device_tracker.h"
#include "nicflow/device_plugin/selector.h"
#include "nicflow/device_plugin/sysfs_scanner.h"
#include "spdlog/spdlog.h"

namespace {

namespace dp = nicflow::device_plugin;

// --list: what the plugin would advertise, without serving anything.
int ListDevices(const dp::DaemonOptions& options) {
  auto config = dp::LoadConfigFile(options.config_path, options.default_prefix);
  if (!config.ok()) {
    std::cerr << "error: " << config.status().message() << "\n";
    return 1;
  }
  dp::SysfsScanner scanner(options.sysfs_root, dp::MakeRdmaLocatorFor(options.sysfs_root));
  auto scan = scanner.Scan();
  if (!scan.ok()) {
    std::cerr << "error: " << scan.status().message() << "\n";
    return 1;
  }
  dp::DeviceTracker tracker;
  const auto devices = tracker.Update(*scan);
  std::vector<std::string> overlaps;
  const auto pools = dp::AssignToResources(*config, devices, &overlaps);
  std::printf("%-22s %-13s %-13s %-4s %-10s %-5s %-9s %-10s %s\n", "RESOURCE", "DEVICE", "PF", "VF",
              "DRIVER", "NUMA", "HEALTH", "RDMA", "REASON");
  for (size_t i = 0; i < pools.size(); ++i) {
    for (const dp::TrackedDevice& d : pools[i]) {
      std::printf("%-22s %-13s %-13s %-4d %-10s %-5d %-9s %-10s %s\n",
                  config->resources[i].FullName().c_str(), d.vf.pci_address.c_str(),
                  d.vf.pf_address.c_str(), d.vf.vf_index,
                  d.vf.driver.empty() ? "-" : d.vf.driver.c_str(), d.vf.numa_node,
                  dp::HealthName(d.health), d.vf.rdma.empty() ? "-" : d.vf.rdma[0].name.c_str(),
                  d.reason.c_str());
    }
  }
  for (const std::string& overlap : overlaps) std::printf("warning: %s\n", overlap.c_str());
  std::printf("%zu VFs found, %zu SR-IOV PFs\n", scan->vfs.size(), scan->pfs.size());
  return 0;
}

int Serve(dp::DaemonOptions options) {
  // Block the stop signals before any thread starts so only sigwait below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto daemon = dp::Daemon::Create(std::move(options));
  if (!daemon.ok()) {
    spdlog::critical("{}", std::string(daemon.status().message()));
    return 1;
  }
  if (auto status = (*daemon)->Start(); !status.ok()) {
    spdlog::critical("{}", std::string(status.message()));
    return 1;
  }
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  spdlog::info("signal {}: stopping", signal_number);
  (*daemon)->Stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nicflow-device-plugin: advertises SmartNIC SR-IOV VFs to the kubelet"};
  dp::DaemonOptions options;
  std::string mode = "kubelet";
  std::string log_level = "info";
  int poll_interval_ms = 500;
  bool list = false;
  app.add_option("--config", options.config_path, "resourceList JSON (SR-IOV device plugin format)")
      ->required();
  app.add_option("--kubelet-dir", options.kubelet_dir,
                 "directory holding kubelet.sock and the plugin sockets")
      ->capture_default_str();
  app.add_option("--sysfs-root", options.sysfs_root, "sysfs mount to discover VFs in")
      ->capture_default_str();
  app.add_option("--registration", mode, "kubelet (kubelet.sock) or plugin-watcher")
      ->check(CLI::IsMember({"kubelet", "plugin-watcher"}))
      ->capture_default_str();
  app.add_option("--plugins-registry-dir", options.plugins_registry_dir,
                 "kubelet plugin watcher directory (with --registration plugin-watcher)")
      ->capture_default_str();
  app.add_option("--resource-prefix", options.default_prefix,
                 "prefix for resources without resourcePrefix")
      ->capture_default_str();
  app.add_option("--poll-interval-ms", poll_interval_ms, "sysfs rescan period")
      ->check(CLI::Range(50, 10000))
      ->capture_default_str();
  app.add_flag("--use-cdi", options.use_cdi, "answer Allocate with CDI device names");
  app.add_option("--cdi-dir", options.cdi_dir, "where CDI spec files are written")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
  app.add_flag("--list", list, "print the devices each resource would get and exit");
  CLI11_PARSE(app, argc, argv);

  spdlog::set_level(spdlog::level::from_str(log_level));
  options.registration_mode =
      mode == "kubelet" ? dp::RegistrationMode::kKubelet : dp::RegistrationMode::kPluginWatcher;
  options.poll_interval = std::chrono::milliseconds(poll_interval_ms);
  return list ? ListDevices(options) : Serve(std::move(options));
}
