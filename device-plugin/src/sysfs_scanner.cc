#include "nicflow/device_plugin/sysfs_scanner.h"

#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "sysfs_util.h"

namespace nicflow::device_plugin {
namespace {

namespace fs = std::filesystem;

constexpr int kArphrdEther = 1;
constexpr int kArphrdInfiniband = 32;

LinkType ReadLinkType(const fs::path& netdev_dir) {
  const auto type = sysfs::ReadIntAttr(netdev_dir / "type");
  if (!type) return LinkType::kUnknown;
  if (*type == kArphrdEther) return LinkType::kEther;
  if (*type == kArphrdInfiniband) return LinkType::kInfiniband;
  return LinkType::kUnknown;
}

int ReadNumaNode(const fs::path& dir) { return sysfs::ReadIntAttr(dir / "numa_node").value_or(-1); }

// Where a VF sits under its PF, from the PF's virtfnN links.
struct VfSlot {
  std::string pf_address;
  int index = -1;
};

PfState ReadPf(const fs::path& dir, const std::string& address,
               std::map<std::string, VfSlot>& slots, std::vector<fs::path>& watch_dirs) {
  PfState pf;
  pf.pci_address = address;
  pf.driver = sysfs::ReadLinkBasename(dir / "driver").value_or("");
  pf.num_vfs = sysfs::ReadIntAttr(dir / "sriov_numvfs").value_or(0);
  pf.total_vfs = sysfs::ReadIntAttr(dir / "sriov_totalvfs").value_or(0);
  pf.numa_node = ReadNumaNode(dir);
  watch_dirs.push_back(dir);
  for (const std::string& name : sysfs::ListDir(dir)) {
    int index = 0;
    if (!absl::StartsWith(name, "virtfn") || !absl::SimpleAtoi(name.substr(6), &index)) continue;
    if (auto vf = sysfs::ReadLinkBasename(dir / name)) slots[*vf] = VfSlot{address, index};
  }
  const auto netdevs = sysfs::ListDir(dir / "net");
  if (!netdevs.empty()) {
    pf.netdev = netdevs.front();
    const fs::path netdev_dir = dir / "net" / pf.netdev;
    pf.operstate = sysfs::ReadAttr(netdev_dir / "operstate").value_or("unknown");
    pf.link_type = ReadLinkType(netdev_dir);
    watch_dirs.push_back(netdev_dir);
  }
  return pf;
}

VfDevice ReadVf(const fs::path& dir, const std::string& address, const std::string& pf_address,
                const RdmaLocator& rdma) {
  VfDevice vf;
  vf.pci_address = address;
  vf.pf_address = pf_address;
  vf.vendor_id = sysfs::ReadHexIdAttr(dir / "vendor").value_or("");
  vf.device_id = sysfs::ReadHexIdAttr(dir / "device").value_or("");
  vf.class_code = sysfs::ReadHexIdAttr(dir / "class").value_or("");
  vf.driver = sysfs::ReadLinkBasename(dir / "driver").value_or("");
  vf.numa_node = ReadNumaNode(dir);
  vf.iommu_group = sysfs::ReadLinkBasename(dir / "iommu_group").value_or("");
  vf.acpi_index = sysfs::ReadAttr(dir / "acpi_index").value_or("");
  vf.netdevs = sysfs::ListDir(dir / "net");
  if (!vf.netdevs.empty()) vf.link_type = ReadLinkType(dir / "net" / vf.netdevs.front());
  vf.rdma = rdma.Find(dir, address);
  return vf;
}

}  // namespace

const char* LinkTypeName(LinkType type) {
  switch (type) {
    case LinkType::kEther:
      return "ether";
    case LinkType::kInfiniband:
      return "infiniband";
    case LinkType::kUnknown:
      break;
  }
  return "unknown";
}

const char* HealthName(Health health) {
  return health == Health::kHealthy ? "Healthy" : "Unhealthy";
}

bool OperStateIsDown(const std::string& operstate) {
  // RFC 2863 states. "unknown" is what many drivers report for a working link without carrier
  // detection, and "dormant"/"testing" still carry traffic, so only these three mean down.
  return operstate == "down" || operstate == "lowerlayerdown" || operstate == "notpresent";
}

SysfsScanner::SysfsScanner(fs::path sysfs_root, std::unique_ptr<RdmaLocator> rdma)
    : root_(std::move(sysfs_root)), rdma_(std::move(rdma)) {}

const VfDevice& SysfsScanner::ReadVfCached(const fs::path& dir, const std::string& address,
                                           CachedFunction& cached, bool& rdma_refreshed) {
  const std::string driver = sysfs::ReadLinkBasename(dir / "driver").value_or("");
  if (cached.vf_valid && cached.driver == driver) return cached.vf;
  if (!rdma_refreshed) {
    rdma_->Refresh();  // only when some VF needs a full read
    rdma_refreshed = true;
  }
  cached.vf = ReadVf(dir, address, cached.physfn, *rdma_);
  cached.driver = cached.vf.driver;
  cached.vf_valid = true;
  return cached.vf;
}

absl::StatusOr<ScanResult> SysfsScanner::Scan() {
  const fs::path devices_dir = root_ / "bus" / "pci" / "devices";
  std::error_code ec;
  if (!fs::is_directory(devices_dir, ec)) {
    return absl::NotFoundError("sysfs: cannot list " + devices_dir.string() +
                               " (is --sysfs-root right?)");
  }
  ScanResult result;
  result.watch_dirs.push_back(devices_dir);
  std::map<std::string, VfSlot> slots;
  std::vector<std::string> vfs;
  std::map<std::string, CachedFunction> seen;
  for (const auto& [address, inode] : sysfs::ListDirWithInodes(devices_dir)) {
    const fs::path dir = devices_dir / address;
    // The entry is a symlink the kernel creates with the device: a new inode means a new
    // device at this address (sysfs does not reuse inode numbers soon).
    // Only a function known to be a VF or a PF is cached: the kernel adds the bus entry before
    // the physfn link and the SR-IOV attributes, so a scan in between sees neither yet, and
    // caching that answer would hide the new VF for as long as its inode lives.
    CachedFunction cached;
    if (auto it = cache_.find(address);
        it != cache_.end() && it->second.inode == inode && it->second.kind != Kind::kOther) {
      cached = std::move(it->second);
    } else {
      cached.inode = inode;
      if (auto physfn = sysfs::ReadLinkBasename(dir / "physfn")) {
        cached.kind = Kind::kVf;
        cached.physfn = *physfn;
      } else if (sysfs::Exists(dir / "sriov_totalvfs")) {
        cached.kind = Kind::kPf;
      }
    }
    if (cached.kind == Kind::kVf) vfs.push_back(address);
    if (cached.kind == Kind::kPf) {
      result.pfs.emplace(address, ReadPf(dir, address, slots, result.watch_dirs));
    }
    seen.emplace(address, std::move(cached));
  }
  cache_ = std::move(seen);
  bool rdma_refreshed = false;
  for (const std::string& address : vfs) {
    const fs::path dir = devices_dir / address;
    CachedFunction& cached = cache_.at(address);
    // The PF's virtfnN link comes last, once the VF is fully set up (driver, IOMMU group,
    // netdev, RDMA devices). Until then the VF is left out and not read, so nothing half-made
    // is cached; the link's creation raises an event in the PF's watched directory.
    if (result.pfs.contains(cached.physfn) && !slots.contains(address)) continue;
    VfDevice vf = ReadVfCached(dir, address, cached, rdma_refreshed);
    if (auto slot = slots.find(address); slot != slots.end()) vf.vf_index = slot->second.index;
    if (auto pf = result.pfs.find(cached.physfn); pf != result.pfs.end()) {
      vf.pf_netdev = pf->second.netdev;
      if (vf.link_type == LinkType::kUnknown) vf.link_type = pf->second.link_type;
    }
    result.watch_dirs.push_back(dir);
    result.vfs.emplace(address, std::move(vf));
  }
  return result;
}

}  // namespace nicflow::device_plugin
