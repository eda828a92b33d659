// The daemon's control thread: events, rescans, config reloads and kubelet registration.
#include "daemon_impl.h"

namespace nicflow::device_plugin {

void Daemon::Impl::Loop() {
  auto next_poll = Clock::now() + options_.poll_interval;
  auto next_config_poll = Clock::now() + kConfigPollInterval;
  {
    std::lock_guard lock(mu_);
    TryRegistrations();
  }
  while (!stop_) {
    std::vector<pollfd> fds = {{inotify_.fd(), POLLIN, 0}, {wakeup_.fd(), POLLIN, 0}};
    if (links_) fds.push_back({links_->fd(), POLLIN, 0});
    ::poll(fds.data(), fds.size(), PollTimeoutMs(next_poll));
    if (fds[1].revents != 0) wakeup_.Drain();
    if (stop_) break;
    LoopEvents events;
    if (fds[0].revents != 0) {
      inotify_.Drain([&](const InotifyEvent& event) { OnInotify(event, events); });
    }
    if (links_ && fds[2].revents != 0) events.rescan |= links_->Drain();
    const auto now = Clock::now();
    if (now >= next_poll) {
      events.rescan = events.kubelet_dir_changed = true;
      next_poll = now + options_.poll_interval;
    }
    if (now >= next_config_poll) {
      events.reload = true;
      next_config_poll = now + kConfigPollInterval;
    }
    std::lock_guard lock(mu_);
    if (events.reload) Reload();
    if (events.rescan) Rescan();
    if (events.kubelet_dir_changed) CheckSockets();
    TryRegistrations();
  }
}

int Daemon::Impl::PollTimeoutMs(Clock::time_point next_poll) const {
  auto deadline = next_poll;
  std::lock_guard lock(mu_);
  if (!KubeletMode() || InodeOf(options_.kubelet_dir / kKubeletSocket) == 0) {
    // Nothing to retry against: kubelet.sock's creation wakes us through inotify.
  } else {
    for (const auto& resource : resources_) {
      if (resource->needs_registration) deadline = std::min(deadline, resource->next_attempt);
    }
  }
  const auto wait = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<int64_t>(wait.count() + 1, 0, 60'000));
}

void Daemon::Impl::OnInotify(const InotifyEvent& event, LoopEvents& events) {
  if (event.mask & IN_Q_OVERFLOW) {
    events.rescan = events.reload = events.kubelet_dir_changed = true;
    return;
  }
  if (event.wd == config_wd_) {
    const std::string file = options_.config_path.filename().string();
    if (event.name == file || event.name == kConfigMapDataLink) events.reload = true;
  } else if (event.wd == kubelet_wd_ || event.wd == registry_wd_) {
    events.kubelet_dir_changed = true;
  } else {
    events.rescan = true;
  }
  if (event.mask & IN_IGNORED) {
    // The kernel dropped the watch (directory deleted); re-added when the path comes back.
    std::lock_guard lock(mu_);
    if (event.wd == kubelet_wd_) kubelet_wd_ = -1;
    if (event.wd == registry_wd_) registry_wd_ = -1;
    if (event.wd == config_wd_) config_wd_ = -1;
    std::erase_if(sysfs_watches_, [&](const auto& entry) { return entry.second == event.wd; });
  }
}

void Daemon::Impl::Rescan() {
  auto scan = scanner_.Scan();
  if (!scan.ok()) {
    if (scan.status().ToString() != last_scan_error_) {
      spdlog::error("discovery failed, keeping the last device list: {}", scan.status().message());
      last_scan_error_ = scan.status().ToString();
    }
    return;
  }
  last_scan_error_.clear();
  UpdateSysfsWatches(scan->watch_dirs);
  const std::vector<TrackedDevice> devices = tracker_.Update(*scan);
  LogHealthChanges(devices);
  Publish(devices);
  WatchDirectories();
}

void Daemon::Impl::Publish(const std::vector<TrackedDevice>& devices) {
  last_devices_ = devices;
  std::vector<std::string> overlaps;
  const auto pools = AssignToResources(config_, devices, &overlaps);
  std::set<std::string> overlap_set(overlaps.begin(), overlaps.end());
  for (const std::string& overlap : overlap_set) {
    if (!last_overlaps_.contains(overlap)) spdlog::warn("{}", overlap);
  }
  last_overlaps_ = std::move(overlap_set);
  for (size_t i = 0; i < resources_.size() && i < pools.size(); ++i) {
    ManagedResource& resource = *resources_[i];
    if (!resource.pool->SetDevices(pools[i]) || !options_.use_cdi) continue;
    if (auto status = WriteCdiSpec(options_.cdi_dir, resource.config, pools[i]); !status.ok()) {
      spdlog::error("{}: {}", resource.config.FullName(), status.message());
    }
  }
}

void Daemon::Impl::LogHealthChanges(const std::vector<TrackedDevice>& devices) {
  std::map<std::string, std::string> now;
  for (const TrackedDevice& device : devices) {
    const std::string state = device.health == Health::kHealthy
                                  ? std::string("Healthy")
                                  : absl::StrCat("Unhealthy (", device.reason, ")");
    const auto before = last_health_.find(device.vf.pci_address);
    if (before == last_health_.end()) {
      spdlog::info("VF {} (PF {} vf {}, driver {}) found: {}", device.vf.pci_address,
                   device.vf.pf_address, device.vf.vf_index,
                   device.vf.driver.empty() ? "none" : device.vf.driver, state);
    } else if (before->second != state) {
      const auto level =
          device.health == Health::kHealthy ? spdlog::level::info : spdlog::level::warn;
      spdlog::log(level, "VF {}: {} -> {}", device.vf.pci_address, before->second, state);
    }
    now.emplace(device.vf.pci_address, state);
  }
  for (const auto& [address, state] : last_health_) {
    if (!now.contains(address)) spdlog::info("VF {} removed (sriov_numvfs lowered)", address);
  }
  last_health_ = std::move(now);
}

void Daemon::Impl::UpdateSysfsWatches(const std::vector<fs::path>& dirs) {
  const std::set<fs::path> wanted(dirs.begin(), dirs.end());
  for (auto it = sysfs_watches_.begin(); it != sysfs_watches_.end();) {
    if (wanted.contains(it->first)) {
      ++it;
      continue;
    }
    inotify_.RemoveWatch(it->second);
    it = sysfs_watches_.erase(it);
  }
  for (const fs::path& dir : wanted) {
    if (sysfs_watches_.contains(dir)) continue;
    auto wd = inotify_.AddWatch(dir, kSysfsMask);
    if (wd.ok()) {
      sysfs_watches_.emplace(dir, *wd);
    } else if (!absl::IsNotFound(wd.status())) {
      spdlog::warn("{} (health falls back to polling)", wd.status().message());
    }
  }
}

}  // namespace nicflow::device_plugin
