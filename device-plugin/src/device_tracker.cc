#include "nicflow/device_plugin/device_tracker.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace nicflow::device_plugin {
namespace {

// Keeps attributes that vanish together with the driver or the device.
void KeepStickyAttributes(const VfDevice& previous, VfDevice& vf) {
  if (vf.driver.empty()) {
    vf.driver = previous.driver;
    if (vf.rdma.empty()) vf.rdma = previous.rdma;
    if (vf.iommu_group.empty()) vf.iommu_group = previous.iommu_group;
  }
  if (vf.pf_netdev.empty()) vf.pf_netdev = previous.pf_netdev;
  if (vf.vf_index < 0) vf.vf_index = previous.vf_index;
  if (vf.link_type == LinkType::kUnknown) vf.link_type = previous.link_type;
}

}  // namespace

std::string UnhealthyReason(const VfDevice& vf, const std::map<std::string, PfState>& pfs) {
  std::vector<std::string> reasons;
  if (vf.driver.empty()) reasons.push_back("driver unbound");
  const auto pf = pfs.find(vf.pf_address);
  if (pf == pfs.end()) {
    reasons.push_back(absl::StrCat("PF ", vf.pf_address, " is gone"));
  } else {
    if (pf->second.driver.empty()) {
      reasons.push_back(absl::StrCat("PF ", vf.pf_address, " driver unbound"));
    }
    if (!pf->second.netdev.empty() && OperStateIsDown(pf->second.operstate)) {
      reasons.push_back(absl::StrCat("PF ", vf.pf_address, " link ", pf->second.netdev, " is ",
                                     pf->second.operstate));
    }
  }
  return absl::StrJoin(reasons, "; ");
}

std::vector<TrackedDevice> DeviceTracker::Update(const ScanResult& scan) {
  std::map<std::string, TrackedDevice> next;
  for (const auto& [address, vf] : scan.vfs) {
    TrackedDevice device{vf, Health::kHealthy, UnhealthyReason(vf, scan.pfs)};
    if (!device.reason.empty()) device.health = Health::kUnhealthy;
    if (const auto previous = known_.find(address); previous != known_.end()) {
      KeepStickyAttributes(previous->second.vf, device.vf);
    }
    next.emplace(address, std::move(device));
  }
  for (const auto& [address, previous] : known_) {
    if (next.contains(address)) continue;
    TrackedDevice device = previous;
    device.health = Health::kUnhealthy;
    const auto pf = scan.pfs.find(previous.vf.pf_address);
    if (pf == scan.pfs.end()) {
      device.reason = absl::StrCat("PF ", previous.vf.pf_address, " is gone");
    } else if (previous.vf.vf_index < 0 || previous.vf.vf_index >= pf->second.num_vfs) {
      continue;  // sriov_numvfs was lowered: the VF was removed on purpose
    } else {
      device.reason = absl::StrCat("VF ", address, " is gone from sysfs");
    }
    next.emplace(address, std::move(device));
  }
  known_ = std::move(next);
  std::vector<TrackedDevice> devices;
  devices.reserve(known_.size());
  for (const auto& [address, device] : known_) devices.push_back(device);
  return devices;
}

}  // namespace nicflow::device_plugin
