// The devices of one resource, shared between the discovery loop (writer) and the gRPC handlers
// (readers).
//
// Readers take an immutable snapshot (shared_ptr to const vectors) under a short lock and then
// work without it, so Allocate never waits for a discovery pass and a ListAndWatch stream never
// blocks the writer. Every change bumps `version`; ListAndWatch waits on it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "nicflow/device_plugin/config.h"
#include "nicflow/device_plugin/device.h"

namespace nicflow::device_plugin {

class ResourcePool {
 public:
  /// An immutable view of the pool. `devices` is sorted by PCI address.
  struct Snapshot {
    uint64_t version = 0;
    std::shared_ptr<const std::vector<TrackedDevice>> devices;
    std::shared_ptr<const ResourceConfig> config;

    /// The device with this ID, or null.
    const TrackedDevice* Find(std::string_view id) const;
  };

  explicit ResourcePool(ResourceConfig config);

  Snapshot Get() const;

  /// Replaces the device list (sorted by PCI address); returns true, bumps the version and wakes
  /// waiters when it differs from the current one.
  bool SetDevices(std::vector<TrackedDevice> devices);

  /// Replaces the configuration (selectors, policy) after a reload; bumps the version.
  void SetConfig(ResourceConfig config);

  /// Blocks until the version differs from `seen_version`, `*stop` becomes true (checked when
  /// Interrupt() is called) or `timeout` passes, and returns the current snapshot.
  Snapshot WaitForChange(uint64_t seen_version, std::chrono::milliseconds timeout,
                         const std::atomic<bool>& stop) const;

  /// Wakes every WaitForChange so it re-checks its stop flag.
  void Interrupt() const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  Snapshot current_;
};

}  // namespace nicflow::device_plugin
