// Finding the RDMA devices of a PCI function.
//
// Two sources, tried in order by the composite locator:
//   * rdma-core's libibverbs (ibv_get_device_list), which knows the devices the verbs stack can
//     open. It always looks at the running system, so it is only used when the sysfs root is the
//     real "/sys".
//   * sysfs: `<pci device>/infiniband/<name>`, `infiniband_verbs/uverbsN`, `infiniband_mad/umadN`
//     and `issmN`, which works for any root (the tests' fake trees, hosts without rdma-core
//     providers for the card).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "nicflow/device_plugin/device.h"

namespace nicflow::device_plugin {

/// Maps PCI functions to their RDMA devices.
class RdmaLocator {
 public:
  virtual ~RdmaLocator() = default;

  /// Refreshes any cached view of the system; called once per discovery pass.
  virtual void Refresh() {}

  /// RDMA devices of the function at `pci_address` whose sysfs directory is `device_dir`.
  /// Returns an empty list when the function has none; never fails (a device whose RDMA side
  /// cannot be read is simply not RDMA-capable for selection purposes).
  virtual std::vector<RdmaDevice> Find(const std::filesystem::path& device_dir,
                                       const std::string& pci_address) const = 0;
};

/// Reads `infiniband/`, `infiniband_verbs/`, `infiniband_mad/` under the PCI device directory.
std::unique_ptr<RdmaLocator> MakeSysfsRdmaLocator();

/// Uses libibverbs' device list (name, uverbs device, sysfs path) and falls back to `fallback`
/// for functions libibverbs does not report.
std::unique_ptr<RdmaLocator> MakeVerbsRdmaLocator(std::unique_ptr<RdmaLocator> fallback);

/// The locator for a sysfs root: verbs + sysfs for "/sys", sysfs only otherwise.
std::unique_ptr<RdmaLocator> MakeRdmaLocatorFor(const std::filesystem::path& sysfs_root);

/// Path of the RDMA connection manager device that every RDMA user needs.
inline constexpr char kRdmaCmDevice[] = "/dev/infiniband/rdma_cm";

}  // namespace nicflow::device_plugin
