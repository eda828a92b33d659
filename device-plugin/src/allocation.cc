#include "nicflow/device_plugin/allocation.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nicflow/device_plugin/rdma.h"
#include "nicflow/device_plugin/selector.h"
#include "nlohmann/json.hpp"

namespace nicflow::device_plugin {
namespace {

using nlohmann::json;

constexpr char kVfioContainerDevice[] = "/dev/vfio/vfio";

DeviceNode Node(const std::string& path) { return DeviceNode{path, path, "rw"}; }

const TrackedDevice* FindDevice(std::span<const TrackedDevice> pool, const std::string& id) {
  const auto it = std::lower_bound(pool.begin(), pool.end(), id,
                                   [](const TrackedDevice& device, const std::string& key) {
                                     return device.vf.pci_address < key;
                                   });
  return it != pool.end() && it->vf.pci_address == id ? &*it : nullptr;
}

bool NeedsVhostNet(const ResourceConfig& resource, const VfDevice& vf) {
  return std::any_of(resource.selectors.begin(), resource.selectors.end(), [&](const Selector& s) {
    return s.need_vhost_net && SelectorMatches(s, resource.device_type, vf);
  });
}

json RdmaInfo(const VfDevice& vf) {
  json info = {{"rdma_cm", kRdmaCmDevice}};
  for (const RdmaDevice& rdma : vf.rdma) {
    for (const std::string& path : rdma.char_devices) {
      const std::string node = path.substr(path.rfind('/') + 1);
      for (const char* kind : {"uverbs", "umad", "issm"}) {
        if (node.starts_with(kind) && !info.contains(kind)) info[kind] = path;
      }
    }
  }
  return info;
}

json DeviceInfo(const VfDevice& vf) {
  json info = {{"generic", {{"deviceID", vf.pci_address}}}};
  if (IsVfioDriver(vf.driver)) {
    info["vfio"] = {{"mount", kVfioContainerDevice},
                    {"dev-mount", absl::StrCat("/dev/vfio/", vf.iommu_group)}};
  }
  if (!vf.rdma.empty()) info["rdma"] = RdmaInfo(vf);
  json extra = {{"pfAddress", vf.pf_address},
                {"vfIndex", vf.vf_index},
                {"numaNode", vf.numa_node},
                {"driver", vf.driver}};
  if (!vf.pf_netdev.empty()) extra["pfName"] = vf.pf_netdev;
  if (!vf.netdevs.empty()) extra["netdev"] = vf.netdevs.front();
  if (!vf.rdma.empty()) extra["rdmaDevice"] = vf.rdma.front().name;
  info["nicflow"] = std::move(extra);
  return info;
}

absl::Status CheckAllocatable(const ResourceConfig& resource, const TrackedDevice* device,
                              const std::string& id) {
  if (device == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("device \"", id, "\" is not a device of resource ", resource.FullName()));
  }
  if (device->health != Health::kHealthy) {
    return absl::FailedPreconditionError(absl::StrCat(
        "device ", id, " of resource ", resource.FullName(), " is Unhealthy: ", device->reason));
  }
  if (IsVfioDriver(device->vf.driver) && device->vf.iommu_group.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("device ", id, " is bound to ", device->vf.driver, " but has no iommu_group"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string PciDeviceEnvName(std::string_view resource_prefix, std::string_view resource_name) {
  std::string name =
      absl::StrCat("PCIDEVICE_", std::string(resource_prefix), "_", std::string(resource_name));
  for (char& c : name) {
    if (c == '.' || c == '/' || c == '-') c = '_';
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return name;
}

std::string CdiKind(const ResourceConfig& resource) { return resource.FullName(); }

bool IsVfioDriver(std::string_view driver) {
  return driver == "vfio-pci" || driver.ends_with("_vfio_pci") || driver.ends_with("-vfio-pci");
}

std::vector<DeviceNode> DeviceNodesFor(const ResourceConfig& resource, const VfDevice& vf) {
  std::vector<DeviceNode> nodes;
  if (IsVfioDriver(vf.driver)) {
    nodes.push_back(Node(kVfioContainerDevice));
    nodes.push_back(Node(absl::StrCat("/dev/vfio/", vf.iommu_group)));
  }
  if (!vf.rdma.empty()) {
    nodes.push_back(Node(kRdmaCmDevice));
    for (const RdmaDevice& rdma : vf.rdma) {
      for (const std::string& path : rdma.char_devices) nodes.push_back(Node(path));
    }
  }
  if (NeedsVhostNet(resource, vf)) {
    nodes.push_back(Node("/dev/vhost-net"));
    nodes.push_back(Node("/dev/net/tun"));
  }
  return nodes;
}

absl::StatusOr<ContainerAllocation> BuildContainerAllocation(
    const ResourceConfig& resource, std::span<const TrackedDevice> pool,
    std::span<const std::string> device_ids, const AllocationOptions& options) {
  ContainerAllocation out;
  std::set<std::string> seen_ids;
  std::set<std::string> seen_nodes;
  json info = json::object();
  for (const std::string& id : device_ids) {
    const TrackedDevice* device = FindDevice(pool, id);
    if (auto status = CheckAllocatable(resource, device, id); !status.ok()) return status;
    if (!seen_ids.insert(id).second) {
      return absl::InvalidArgumentError(absl::StrCat("device ", id, " requested twice"));
    }
    info[id] = DeviceInfo(device->vf);
    if (options.use_cdi) {
      out.cdi_devices.push_back(absl::StrCat(CdiKind(resource), "=", id));
      continue;
    }
    for (DeviceNode& node : DeviceNodesFor(resource, device->vf)) {
      if (seen_nodes.insert(node.host_path).second) out.devices.push_back(std::move(node));
    }
  }
  const std::string env = PciDeviceEnvName(resource.resource_prefix, resource.resource_name);
  out.envs[env] = absl::StrJoin(device_ids, ",");
  out.envs[env + "_INFO"] = info.dump();
  if (options.use_cdi && !out.cdi_devices.empty()) {
    // For runtimes that read CDI requests from annotations rather than the CRI field.
    out.annotations["cdi.k8s.io/nicflow-device-plugin_" + resource.resource_name] =
        absl::StrJoin(out.cdi_devices, ",");
  }
  return out;
}

}  // namespace nicflow::device_plugin
