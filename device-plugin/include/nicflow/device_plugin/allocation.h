// What a container gets for its VFs: environment, device nodes and CDI names.
//
// Environment (same names as the SR-IOV network device plugin, so Multus / SR-IOV CNI and
// DPDK applications that read them keep working):
//   PCIDEVICE_<PREFIX>_<NAME>       = "0000:3b:00.2,0000:3b:00.3"
//   PCIDEVICE_<PREFIX>_<NAME>_INFO  = {"0000:3b:00.2": {"generic": {"deviceID": ...},
//                                       "vfio": {"mount": "/dev/vfio/vfio",
//                                                "dev-mount": "/dev/vfio/42"},
//                                       "rdma": {"rdma_cm": ..., "uverbs": ..., "umad": ...},
//                                       "nicflow": {"pfAddress": ..., "vfIndex": ..., ...}}}
// where <PREFIX>_<NAME> is the resource prefix and name upper-cased with '.', '/', '-' -> '_'.
#pragma once

#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/device_plugin/config.h"
#include "nicflow/device_plugin/device.h"

namespace nicflow::device_plugin {

/// A host device node to expose in the container.
struct DeviceNode {
  std::string container_path;
  std::string host_path;
  /// cgroup permissions, "rw" for everything nicflow hands out.
  std::string permissions;
  bool operator==(const DeviceNode&) const = default;
};

/// The response for one container, independent of gRPC types.
struct ContainerAllocation {
  std::map<std::string, std::string> envs;
  std::vector<DeviceNode> devices;
  std::map<std::string, std::string> annotations;
  /// Fully qualified CDI device names ("nicflow.io/vf=0000:3b:00.2").
  std::vector<std::string> cdi_devices;
};

struct AllocationOptions {
  /// Return CDI device names (and the cdi.k8s.io annotation) instead of device nodes; the CDI
  /// spec written by the daemon describes the nodes.
  bool use_cdi = false;
};

/// "PCIDEVICE_" + upper-cased "<prefix>_<name>" with '.', '/', '-' replaced by '_'.
std::string PciDeviceEnvName(std::string_view resource_prefix, std::string_view resource_name);

/// CDI kind of a resource: "<prefix>/<name>".
std::string CdiKind(const ResourceConfig& resource);

/// Device nodes a container needs for one VF: /dev/vfio/vfio and /dev/vfio/<group> for
/// vfio-pci bound VFs, the RDMA character devices plus /dev/infiniband/rdma_cm for RDMA VFs, and
/// /dev/vhost-net + /dev/net/tun when a matching selector asks for needVhostNet. Deduplicated
/// across VFs by the caller.
std::vector<DeviceNode> DeviceNodesFor(const ResourceConfig& resource, const VfDevice& vf);

/// True for vfio-pci and vendor variants (mlx5_vfio_pci, ...).
bool IsVfioDriver(std::string_view driver);

/// Builds the response for one container's `device_ids` from the pool snapshot `pool` (sorted
/// by PCI address).
/// Errors: InvalidArgument naming an ID not in the pool or listed twice; FailedPrecondition
/// naming an Unhealthy device and why; FailedPrecondition for a vfio device without an IOMMU
/// group.
absl::StatusOr<ContainerAllocation> BuildContainerAllocation(
    const ResourceConfig& resource, std::span<const TrackedDevice> pool,
    std::span<const std::string> device_ids, const AllocationOptions& options);

}  // namespace nicflow::device_plugin
