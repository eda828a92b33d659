#include "nicflow/device_plugin/resource_pool.h"

#include <algorithm>
#include <utility>

namespace nicflow::device_plugin {

const TrackedDevice* ResourcePool::Snapshot::Find(std::string_view id) const {
  if (!devices) return nullptr;
  const auto it = std::lower_bound(devices->begin(), devices->end(), id,
                                   [](const TrackedDevice& device, std::string_view key) {
                                     return device.vf.pci_address < key;
                                   });
  if (it == devices->end() || it->vf.pci_address != id) return nullptr;
  return &*it;
}

ResourcePool::ResourcePool(ResourceConfig config) {
  current_.devices = std::make_shared<const std::vector<TrackedDevice>>();
  current_.config = std::make_shared<const ResourceConfig>(std::move(config));
}

ResourcePool::Snapshot ResourcePool::Get() const {
  std::lock_guard lock(mu_);
  return current_;
}

bool ResourcePool::SetDevices(std::vector<TrackedDevice> devices) {
  std::lock_guard lock(mu_);
  if (*current_.devices == devices) return false;
  current_.devices = std::make_shared<const std::vector<TrackedDevice>>(std::move(devices));
  ++current_.version;
  changed_.notify_all();
  return true;
}

void ResourcePool::SetConfig(ResourceConfig config) {
  std::lock_guard lock(mu_);
  current_.config = std::make_shared<const ResourceConfig>(std::move(config));
  ++current_.version;
  changed_.notify_all();
}

ResourcePool::Snapshot ResourcePool::WaitForChange(uint64_t seen_version,
                                                   std::chrono::milliseconds timeout,
                                                   const std::atomic<bool>& stop) const {
  std::unique_lock lock(mu_);
  changed_.wait_for(lock, timeout, [&] { return stop.load() || current_.version != seen_version; });
  return current_;
}

void ResourcePool::Interrupt() const {
  std::lock_guard lock(mu_);
  changed_.notify_all();
}

}  // namespace nicflow::device_plugin
