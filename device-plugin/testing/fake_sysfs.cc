#include "fake_sysfs.h"

#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace nicflow::device_plugin::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kDevicesParent[] = "devices/pci0000:00";

struct Bdf {
  unsigned domain = 0, bus = 0, device = 0, function = 0;
};

Bdf ParseBdf(const std::string& address) {
  Bdf bdf;
  if (std::sscanf(address.c_str(), "%x:%x:%x.%x", &bdf.domain, &bdf.bus, &bdf.device,
                  &bdf.function) != 4) {
    throw std::invalid_argument("bad PCI address " + address);
  }
  return bdf;
}

std::string FormatBdf(unsigned domain, unsigned routing_id) {
  char text[16];
  std::snprintf(text, sizeof(text), "%04x:%02x:%02x.%x", domain, (routing_id >> 8) & 0xff,
                (routing_id >> 3) & 0x1f, routing_id & 0x7);
  return text;
}

}  // namespace

FakeSysfs::FakeSysfs(fs::path root) : root_(std::move(root)) {
  fs::create_directories(root_ / "bus/pci/devices");
  fs::create_directories(root_ / "bus/pci/drivers");
  fs::create_directories(root_ / "kernel/iommu_groups");
  fs::create_directories(root_ / kDevicesParent);
}

fs::path FakeSysfs::DeviceDir(const std::string& address) const {
  return root_ / kDevicesParent / address;
}

void FakeSysfs::WriteAttr(const fs::path& path, const std::string& value) const {
  std::ofstream out(path, std::ios::trunc);
  out << value << "\n";
  if (!out.flush()) throw std::runtime_error("cannot write " + path.string());
}

void FakeSysfs::CreateDevice(const std::string& address, const std::string& vendor,
                             const std::string& device, const std::string& class_code,
                             const std::string& driver, int numa_node) {
  const fs::path dir = DeviceDir(address);
  fs::create_directories(dir);
  WriteAttr(dir / "vendor", "0x" + vendor);
  WriteAttr(dir / "device", "0x" + device);
  WriteAttr(dir / "class", class_code);
  WriteAttr(dir / "numa_node", std::to_string(numa_node));
  fs::create_directory_symlink(fs::path("../../..") / kDevicesParent / address,
                               root_ / "bus/pci/devices" / address);
  Step();
  if (!driver.empty()) {
    BindDriver(address, driver);
    Step();
  }
}

void FakeSysfs::AddPf(const FakePf& pf) {
  pfs_[pf.address] = pf;
  CreateDevice(pf.address, pf.vendor, pf.pf_device, pf.class_code, pf.pf_driver, pf.numa_node);
  const fs::path dir = DeviceDir(pf.address);
  WriteAttr(dir / "sriov_totalvfs", std::to_string(pf.total_vfs));
  WriteAttr(dir / "sriov_numvfs", "0");
  if (!pf.netdev.empty()) {
    const fs::path net = dir / "net" / pf.netdev;
    fs::create_directories(net);
    WriteAttr(net / "operstate", "up");
    WriteAttr(net / "type", std::to_string(pf.link_type));
  }
  SetNumVfs(pf.address, pf.num_vfs);
}

std::string FakeSysfs::VfAddress(const std::string& pf_address, int index) const {
  // Each PF function gets two buses of VF routing ids after its own bus, offset 0, stride 1.
  const Bdf pf = ParseBdf(pf_address);
  const unsigned first = (pf.bus + 1 + 2 * (pf.device * 8 + pf.function)) << 8;
  return FormatBdf(pf.domain, first + static_cast<unsigned>(index));
}

void FakeSysfs::CreateVf(const FakePf& pf, int index) {
  const std::string address = VfAddress(pf.address, index);
  const int numa = pf.vf_numa ? pf.vf_numa(index) : pf.numa_node;
  CreateDevice(address, pf.vendor, pf.vf_device, pf.class_code, pf.vf_driver, numa);
  const fs::path dir = DeviceDir(address);
  fs::create_directory_symlink("../" + pf.address, dir / "physfn");
  Step();
  if (pf.first_iommu_group >= 0) {
    const std::string group = std::to_string(pf.first_iommu_group + index);
    fs::create_directories(root_ / "kernel/iommu_groups" / group);
    fs::create_directory_symlink("../../../kernel/iommu_groups/" + group, dir / "iommu_group");
    Step();
  }
  if (pf.vf_netdevs && !pf.netdev.empty()) {
    const fs::path net = dir / "net" / (pf.netdev + "v" + std::to_string(index));
    fs::create_directories(net);
    WriteAttr(net / "operstate", "down");  // a VF waiting in the host namespace is down
    WriteAttr(net / "type", std::to_string(pf.link_type));
    Step();
  }
  if (pf.rdma) {
    if (!rdma_index_.contains(address)) rdma_index_[address] = next_rdma_index_++;
    const int n = rdma_index_[address];
    const std::string ibdev = pf.rdma_prefix + std::to_string(n + 2);
    fs::create_directories(dir / "infiniband" / ibdev);
    for (const char* node :
         {"infiniband_verbs/uverbs", "infiniband_mad/umad", "infiniband_mad/issm"}) {
      const fs::path entry = dir / (std::string(node) + std::to_string(n));
      fs::create_directories(entry);
      WriteAttr(entry / "ibdev", ibdev);
    }
    Step();
  }
  // The kernel creates the PF's virtfn link last, once the VF is fully set up.
  fs::create_directory_symlink("../" + address,
                               DeviceDir(pf.address) / ("virtfn" + std::to_string(index)));
  Step();
}

void FakeSysfs::RemoveVf(const FakePf& pf, int index) {
  fs::remove(DeviceDir(pf.address) / ("virtfn" + std::to_string(index)));
  RemoveDevice(VfAddress(pf.address, index));
}

void FakeSysfs::SetNumVfs(const std::string& pf_address, int num_vfs) {
  FakePf& pf = pfs_.at(pf_address);
  const int current = std::stoi([&] {
    std::ifstream in(DeviceDir(pf_address) / "sriov_numvfs");
    std::string text;
    in >> text;
    return text;
  }());
  for (int i = current - 1; i >= num_vfs; --i) RemoveVf(pf, i);
  for (int i = current; i < num_vfs; ++i) CreateVf(pf, i);
  pf.num_vfs = num_vfs;
  WriteAttr(DeviceDir(pf_address) / "sriov_numvfs", std::to_string(num_vfs));
}

void FakeSysfs::SetOperState(const std::string& pf_address, const std::string& operstate) {
  const FakePf& pf = pfs_.at(pf_address);
  WriteAttr(DeviceDir(pf_address) / "net" / pf.netdev / "operstate", operstate);
}

void FakeSysfs::UnbindDriver(const std::string& address) {
  fs::remove(DeviceDir(address) / "driver");
}

void FakeSysfs::BindDriver(const std::string& address, const std::string& driver) {
  fs::create_directories(root_ / "bus/pci/drivers" / driver);
  fs::remove(DeviceDir(address) / "driver");
  fs::create_directory_symlink("../../../bus/pci/drivers/" + driver, DeviceDir(address) / "driver");
  drivers_[address] = driver;
}

void FakeSysfs::RemoveDevice(const std::string& address) {
  fs::remove(root_ / "bus/pci/devices" / address);
  fs::remove_all(DeviceDir(address));
}

void FakeSysfs::AddPlainDevice(const std::string& address, const std::string& class_code) {
  CreateDevice(address, "10de", "20b0", class_code, "nvidia", 0);
}

}  // namespace nicflow::device_plugin::testing
