// Discovery of SR-IOV physical and virtual functions from sysfs.
//
// One Scan() reads `<root>/bus/pci/devices/*` and returns every SR-IOV capable PF (it has
// `sriov_totalvfs`) and every VF (it has `physfn`).
//
// The daemon scans on every change notification and on a poll timer, so a pass must be cheap.
// Reading every attribute of 256 VFs is ~8000 syscalls (~200 ms on a small VM), so the scanner
// caches what cannot change while a function exists: whether it is a VF, PF or neither, and a
// VF's ids, NUMA node, IOMMU group, RDMA devices and netdevs. The cache key is the inode of
// the device's `bus/pci/devices` entry, which readdir returns for free (a re-created VF is a new
// sysfs node), plus the bound driver (rebinding changes the RDMA devices and netdevs). A
// steady-state pass then costs one readlink per VF plus a handful of reads per PF.
//
// Not thread-safe: one scanner per thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/device_plugin/device.h"
#include "nicflow/device_plugin/rdma.h"

namespace nicflow::device_plugin {

/// State of one SR-IOV capable physical function.
struct PfState {
  std::string pci_address;
  /// Bound driver, empty when unbound.
  std::string driver;
  /// `sriov_numvfs`: VFs currently enabled.
  int num_vfs = 0;
  /// `sriov_totalvfs`.
  int total_vfs = 0;
  /// Network interface of the PF (first entry of `net/`), empty when none.
  std::string netdev;
  /// `net/<netdev>/operstate` ("up", "down", "unknown", ...), empty without a netdev.
  std::string operstate;
  LinkType link_type = LinkType::kUnknown;
  int numa_node = -1;

  bool operator==(const PfState&) const = default;
};

/// Everything one discovery pass saw, keyed by PCI address.
struct ScanResult {
  std::map<std::string, PfState> pfs;
  std::map<std::string, VfDevice> vfs;
  /// Directories whose changes can affect the result: watched with inotify by the daemon.
  std::vector<std::filesystem::path> watch_dirs;
};

/// Reads SR-IOV functions below a sysfs root.
class SysfsScanner {
 public:
  /// `sysfs_root` is "/sys" on a node, a temporary tree in tests.
  SysfsScanner(std::filesystem::path sysfs_root, std::unique_ptr<RdmaLocator> rdma);

  /// One discovery pass. Fails (NotFound) only when `<root>/bus/pci/devices` cannot be listed;
  /// devices that vanish while being read are skipped and show up as gone in the next pass.
  absl::StatusOr<ScanResult> Scan();

  const std::filesystem::path& root() const { return root_; }

 private:
  enum class Kind { kOther, kVf, kPf };
  struct CachedFunction {
    uint64_t inode = 0;
    Kind kind = Kind::kOther;
    std::string physfn;
    bool vf_valid = false;
    std::string driver;
    VfDevice vf;
  };

  const VfDevice& ReadVfCached(const std::filesystem::path& dir, const std::string& address,
                               CachedFunction& cached, bool& rdma_refreshed);

  std::filesystem::path root_;
  std::unique_ptr<RdmaLocator> rdma_;
  std::map<std::string, CachedFunction> cache_;
};

/// Operational states that mean "no link": the VFs of such a PF cannot pass traffic.
bool OperStateIsDown(const std::string& operstate);

}  // namespace nicflow::device_plugin
