// Private: the daemon's state and control loop, shared by daemon.cc (lifecycle) and
// daemon_loop.cc (events, rescans, reloads, registration). See daemon.h for the design.
#pragma once

#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl_fmt.h"
#include "kubelet_registration.h"
#include "nicflow/device_plugin/cdi.h"
#include "nicflow/device_plugin/config.h"
#include "nicflow/device_plugin/daemon.h"
#include "nicflow/device_plugin/device_tracker.h"
#include "nicflow/device_plugin/file_watch.h"
#include "nicflow/device_plugin/selector.h"
#include "nicflow/device_plugin/sysfs_scanner.h"
#include "resource_server.h"
#include "spdlog/spdlog.h"

namespace nicflow::device_plugin {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint32_t kSysfsMask = IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM |
                                IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_ONLYDIR;
constexpr uint32_t kDirMask =
    IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR;
constexpr char kKubeletSocket[] = "kubelet.sock";
// ConfigMap volumes update by swapping this symlink.
constexpr char kConfigMapDataLink[] = "..data";
constexpr milliseconds kRegisterTimeout{1000};
constexpr milliseconds kRetryMin{100};
constexpr milliseconds kRetryMax{5000};
// Backstop for config changes inotify cannot see (e.g. the directory itself replaced).
constexpr milliseconds kConfigPollInterval{5000};

inline std::string SocketName(const ResourceConfig& resource) {
  return absl::StrCat(resource.resource_prefix, "_", resource.resource_name, ".sock");
}

inline ino_t InodeOf(const fs::path& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

inline absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("config ", path.string(), ": cannot open"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// One configured resource and what serves it.
struct ManagedResource {
  ResourceConfig config;
  std::shared_ptr<ResourcePool> pool;
  std::unique_ptr<ResourceServer> server;
  bool needs_registration = false;
  bool registered = false;
  int registrations = 0;
  /// Inode of the kubelet.sock we last registered on: a different one means a new kubelet.
  ino_t kubelet_inode = 0;
  Clock::time_point next_attempt{};
  milliseconds backoff = kRetryMin;
};

class Daemon::Impl {
 public:
  Impl(DaemonOptions options, PluginConfig config, std::string config_text, Inotify inotify,
       WakeupFd wakeup, std::optional<LinkEventSocket> links)
      : options_(std::move(options)),
        config_(std::move(config)),
        config_text_(std::move(config_text)),
        scanner_(options_.sysfs_root, MakeRdmaLocatorFor(options_.sysfs_root)),
        pre_start_scanner_(options_.sysfs_root, MakeRdmaLocatorFor(options_.sysfs_root)),
        inotify_(std::move(inotify)),
        wakeup_(std::move(wakeup)),
        links_(std::move(links)) {
    for (const ResourceConfig& resource : config_.resources) AddResource(resource);
  }

  ~Impl() { Stop(); }

  absl::Status Init();
  absl::Status Start();
  void Stop();
  std::vector<ResourceStatus> Status() const;

 private:
  struct LoopEvents {
    bool rescan = false;
    bool reload = false;
    bool kubelet_dir_changed = false;
  };

  fs::path SocketDir() const {
    return options_.registration_mode == RegistrationMode::kKubelet ? options_.kubelet_dir
                                                                    : options_.plugins_registry_dir;
  }
  bool KubeletMode() const { return options_.registration_mode == RegistrationMode::kKubelet; }

  ManagedResource& AddResource(const ResourceConfig& resource);
  absl::Status StartResource(ManagedResource& resource);
  void WatchDirectories();
  void Loop();
  int PollTimeoutMs(Clock::time_point next_poll) const;
  void OnInotify(const InotifyEvent& event, LoopEvents& events);
  void Rescan();
  void Publish(const std::vector<TrackedDevice>& devices);
  void LogHealthChanges(const std::vector<TrackedDevice>& devices);
  void UpdateSysfsWatches(const std::vector<fs::path>& dirs);
  void Reload();
  void ApplyConfig(PluginConfig config);
  void CheckSockets();
  void TryRegistrations();
  absl::Status PreStartCheck(std::span<const std::string> device_ids);

  const DaemonOptions options_;
  PluginConfig config_;
  std::string config_text_;
  std::string rejected_config_text_;
  SysfsScanner scanner_;
  DeviceTracker tracker_;
  std::mutex pre_start_mu_;
  SysfsScanner pre_start_scanner_;
  Inotify inotify_;
  WakeupFd wakeup_;
  std::optional<LinkEventSocket> links_;

  mutable std::mutex mu_;  // resources_ and the fields below; held by the control thread
  std::vector<std::unique_ptr<ManagedResource>> resources_;
  std::vector<TrackedDevice> last_devices_;
  std::map<std::string, std::string> last_health_;  // address -> health + reason
  std::set<std::string> last_overlaps_;
  std::string last_scan_error_;
  std::map<fs::path, int> sysfs_watches_;
  int kubelet_wd_ = -1;
  int config_wd_ = -1;
  int registry_wd_ = -1;
  bool started_ = false;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace nicflow::device_plugin
