// Health tracking: folds successive discovery passes into the device list kubelet sees.
//
// Health rules (docs/device-plugin.md has the user-facing version):
//   * A present VF is Unhealthy when its driver is unbound, its PF is gone or has no driver, or
//     the PF's link is down (operstate down / lowerlayerdown / notpresent). The VF's own netdev
//     is not consulted: a VF waiting in the host namespace is normally down, and one given to a
//     pod is no longer visible here, yet both are fine.
//   * A VF that vanished from sysfs while its PF still counts it (index < sriov_numvfs), or whose
//     PF vanished, stays listed as Unhealthy so the kubelet learns the device failed.
//   * A VF whose index is at or above its PF's sriov_numvfs was removed on purpose and leaves
//     the list; new VFs join it.
// Attributes that disappear with the driver or the device (driver name, RDMA devices, PF netdev)
// keep their last seen value so the device stays in the pool it was selected into.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "nicflow/device_plugin/device.h"
#include "nicflow/device_plugin/sysfs_scanner.h"

namespace nicflow::device_plugin {

/// Health verdict for one present VF against the PFs of the same pass; empty when healthy,
/// else the reasons joined by "; ".
std::string UnhealthyReason(const VfDevice& vf, const std::map<std::string, PfState>& pfs);

class DeviceTracker {
 public:
  /// Folds `scan` into the tracked set and returns it sorted by PCI address.
  std::vector<TrackedDevice> Update(const ScanResult& scan);

 private:
  std::map<std::string, TrackedDevice> known_;
};

}  // namespace nicflow::device_plugin
