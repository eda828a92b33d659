// A fake sysfs tree with the layout the kernel uses for SR-IOV devices, for tests and the
// benchmark:
//
//   <root>/bus/pci/devices/<bdf> -> ../../../devices/pci0000:00/<bdf>
//   <root>/devices/pci0000:00/<bdf>/{vendor,device,class,numa_node,driver ->, iommu_group ->}
//     PF: sriov_totalvfs, sriov_numvfs, virtfnN -> ../<vf bdf>, net/<if>/{operstate,type}
//     VF: physfn -> ../<pf bdf>, net/<if>/, infiniband/<dev>/, infiniband_verbs/uverbsN/ibdev,
//         infiniband_mad/{umadN,issmN}/ibdev
//
// Edits mimic what the kernel does (SetNumVfs creates and removes VF directories and virtfn
// links), so the plugin sees the same sequence of changes as on a node.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>

namespace nicflow::device_plugin::testing {

struct FakePf {
  std::string address = "0000:3b:00.0";
  std::string vendor = "15b3";
  std::string pf_device = "1017";
  std::string vf_device = "1018";
  std::string class_code = "0x020000";
  std::string pf_driver = "mlx5_core";
  std::string vf_driver = "mlx5_core";
  /// PF netdev; empty for none.
  std::string netdev = "ens1f0";
  /// ARPHRD type of the netdevs: 1 Ethernet, 32 InfiniBand.
  int link_type = 1;
  int numa_node = 0;
  int total_vfs = 8;
  int num_vfs = 4;
  /// VFs get infiniband/<rdma_prefix><n> plus uverbs/umad/issm entries.
  bool rdma = false;
  std::string rdma_prefix = "mlx5_";
  /// VFs get a netdev "<netdev>v<i>" (not when bound to vfio-pci).
  bool vf_netdevs = true;
  /// VF IOMMU groups start here; -1 for none.
  int first_iommu_group = -1;
  /// Per-VF NUMA node; default: the PF's.
  std::function<int(int vf_index)> vf_numa;
};

/// Builds and edits a fake tree under `root` (created if missing). Filesystem errors throw
/// std::filesystem::filesystem_error: this is test support.
class FakeSysfs {
 public:
  explicit FakeSysfs(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }

  /// Adds a PF and its first `num_vfs` VFs.
  void AddPf(const FakePf& pf);
  /// Writes sriov_numvfs and creates or removes VFs to match, like the kernel.
  void SetNumVfs(const std::string& pf_address, int num_vfs);
  /// Writes the PF netdev's operstate ("up", "down").
  void SetOperState(const std::string& pf_address, const std::string& operstate);
  void UnbindDriver(const std::string& address);
  void BindDriver(const std::string& address, const std::string& driver);
  /// Removes a device's directory and link (hot-unplug) without touching sriov_numvfs.
  void RemoveDevice(const std::string& address);
  /// PCI address of VF `index` of a PF added with AddPf.
  std::string VfAddress(const std::string& pf_address, int index) const;
  /// Adds a non-SR-IOV PCI device (a GPU, a NVMe drive) that discovery must ignore.
  void AddPlainDevice(const std::string& address, const std::string& class_code);
  /// Runs `hook` after each filesystem step of creating a VF (bus entry, driver link, physfn,
  /// IOMMU group, netdev, RDMA entries, the PF's virtfn link), so a test can look at the tree in
  /// every state a scan may meet while the kernel sets a VF up. Empty to stop.
  void OnEachStep(std::function<void()> hook) { on_step_ = std::move(hook); }

 private:
  std::filesystem::path DeviceDir(const std::string& address) const;
  void WriteAttr(const std::filesystem::path& path, const std::string& value) const;
  void CreateDevice(const std::string& address, const std::string& vendor,
                    const std::string& device, const std::string& class_code,
                    const std::string& driver, int numa_node);
  void CreateVf(const FakePf& pf, int index);
  void RemoveVf(const FakePf& pf, int index);
  void Step() const {
    if (on_step_) on_step_();
  }

  std::filesystem::path root_;
  std::map<std::string, FakePf> pfs_;
  std::map<std::string, std::string> drivers_;  // address -> last bound driver
  int next_rdma_index_ = 0;
  std::map<std::string, int> rdma_index_;  // VF address -> index
  std::function<void()> on_step_;
};

}  // namespace nicflow::device_plugin::testing
