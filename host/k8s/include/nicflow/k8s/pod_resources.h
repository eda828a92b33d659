// Which VF each local pod received: kubelet's PodResources API (v1 List) over its unix socket,
// mapped to the VFs the nicflow device plugin advertises.
//
// The device plugin (device-plugin/) advertises VFs under "<prefix>/<name>" resources
// (nicflow.io/vf by default) with the VF's PCI address as the device ID; the kubelet reports,
// per pod and container, the device IDs it allocated. ResolvePodVfs keeps the devices of our
// resources and finds each VF's PF and index in sysfs (physfn, virtfnN), so the agent can bind
// the pod to its VF port.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace nicflow::k8s {

/// One device the kubelet allocated to a container.
struct PodDevice {
  std::string ns;
  std::string pod;
  std::string container;
  std::string resource_name;  ///< "nicflow.io/vf"
  std::string device_id;      ///< for our resources, the VF's PCI address "0000:3b:00.2"
  std::vector<int64_t> numa_nodes;
};

/// A VF bound to a pod.
struct PodVf {
  std::string ns;
  std::string pod;
  std::string container;
  std::string resource_name;
  std::string pci_address;     ///< the VF, "0000:3b:00.2"
  std::string pf_pci_address;  ///< its PF; empty when sysfs has no physfn link
  int vf_index = -1;           ///< N of the PF's virtfnN link; -1 when unknown
  std::string pf_netdev;       ///< the PF's interface ("ens1f0"); empty when none
  std::string netdev;          ///< the VF's interface while in the host namespace; else empty
};

struct VfResolveOptions {
  /// Resources whose devices are VFs: exact names ("nicflow.io/vf") or prefixes ending in '/'
  /// ("nicflow.io/" takes every resource of the prefix).
  std::vector<std::string> resources = {"nicflow.io/"};
  std::string sysfs_root = "/sys";  ///< tests point this at a fake tree
};

struct VfResolution {
  std::vector<PodVf> vfs;  ///< sorted by namespace, pod, container, PCI address
  /// Devices of our resources that could not be resolved, one line each naming the pod,
  /// container, resource and device ID (not a PCI address; no such device in sysfs).
  std::vector<std::string> problems;
};

/// Keeps the devices of `options.resources` and resolves each to its VF.
VfResolution ResolvePodVfs(std::span<const PodDevice> devices, const VfResolveOptions& options);

class PodResourcesClient {
 public:
  static constexpr char kDefaultSocket[] = "/var/lib/kubelet/pod-resources/kubelet.sock";

  /// A client of the kubelet socket at `socket_path`; no connection is made yet.
  /// Errors: InvalidArgument for a relative path.
  static absl::StatusOr<std::unique_ptr<PodResourcesClient>> Create(
      std::string socket_path = kDefaultSocket,
      std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
  virtual ~PodResourcesClient() = default;

  /// Every device allocated to every pod on the node (v1.PodResourcesLister/List).
  /// Errors: Unavailable when the kubelet does not answer on the socket, DeadlineExceeded after
  /// the timeout, Unimplemented when the kubelet does not serve v1; each names the socket.
  virtual absl::StatusOr<std::vector<PodDevice>> List() = 0;
};

}  // namespace nicflow::k8s
