#include "nicflow/device_plugin/rdma.h"

#include <infiniband/verbs.h>

#include <map>
#include <utility>

#include "spdlog/spdlog.h"
#include "sysfs_util.h"

namespace nicflow::device_plugin {
namespace {

namespace fs = std::filesystem;

constexpr char kDevInfiniband[] = "/dev/infiniband/";

// Character devices under `class_dir` (infiniband_verbs or infiniband_mad) that belong to the
// RDMA device `name`. Each entry has an `ibdev` attribute naming its device; when it is missing
// (older kernels, minimal fake trees) and the function has a single RDMA device, it is that one.
void AppendCharDevices(const fs::path& class_dir, const std::string& name, bool single_device,
                       std::vector<std::string>& out) {
  for (const std::string& entry : sysfs::ListDir(class_dir)) {
    const auto ibdev = sysfs::ReadAttr(class_dir / entry / "ibdev");
    if (ibdev ? *ibdev == name : single_device) out.push_back(kDevInfiniband + entry);
  }
}

class SysfsRdmaLocator : public RdmaLocator {
 public:
  std::vector<RdmaDevice> Find(const fs::path& device_dir,
                               const std::string& /*pci_address*/) const override {
    std::vector<RdmaDevice> devices;
    const auto names = sysfs::ListDir(device_dir / "infiniband");
    for (const std::string& name : names) {
      RdmaDevice device{name, {}};
      AppendCharDevices(device_dir / "infiniband_verbs", name, names.size() == 1,
                        device.char_devices);
      AppendCharDevices(device_dir / "infiniband_mad", name, names.size() == 1,
                        device.char_devices);
      devices.push_back(std::move(device));
    }
    return devices;
  }
};

// RAII for the array returned by ibv_get_device_list.
struct IbvDeviceListDeleter {
  void operator()(ibv_device** list) const { ibv_free_device_list(list); }
};

class VerbsRdmaLocator : public RdmaLocator {
 public:
  explicit VerbsRdmaLocator(std::unique_ptr<RdmaLocator> fallback)
      : fallback_(std::move(fallback)) {}

  void Refresh() override {
    by_pci_.clear();
    int count = 0;
    std::unique_ptr<ibv_device*, IbvDeviceListDeleter> list(ibv_get_device_list(&count));
    if (!list) return;  // no verbs support in this kernel/container: the sysfs path answers
    for (int i = 0; i < count; ++i) {
      ibv_device* device = list.get()[i];
      const auto pci = sysfs::ReadLinkBasename(fs::path(device->ibdev_path) / "device");
      if (!pci) continue;
      RdmaDevice rdma{ibv_get_device_name(device),
                      {kDevInfiniband + std::string(device->dev_name)}};
      by_pci_[*pci].push_back(std::move(rdma));
    }
  }

  std::vector<RdmaDevice> Find(const fs::path& device_dir,
                               const std::string& pci_address) const override {
    const auto it = by_pci_.find(pci_address);
    if (it == by_pci_.end()) return fallback_->Find(device_dir, pci_address);
    std::vector<RdmaDevice> devices = it->second;
    for (RdmaDevice& device : devices) {
      // libibverbs only knows the uverbs node; management devices come from sysfs.
      AppendCharDevices(device_dir / "infiniband_mad", device.name, devices.size() == 1,
                        device.char_devices);
    }
    return devices;
  }

 private:
  std::unique_ptr<RdmaLocator> fallback_;
  std::map<std::string, std::vector<RdmaDevice>> by_pci_;
};

}  // namespace

std::unique_ptr<RdmaLocator> MakeSysfsRdmaLocator() { return std::make_unique<SysfsRdmaLocator>(); }

std::unique_ptr<RdmaLocator> MakeVerbsRdmaLocator(std::unique_ptr<RdmaLocator> fallback) {
  return std::make_unique<VerbsRdmaLocator>(std::move(fallback));
}

std::unique_ptr<RdmaLocator> MakeRdmaLocatorFor(const fs::path& sysfs_root) {
  std::error_code ec;
  if (fs::equivalent(sysfs_root, "/sys", ec)) {
    return MakeVerbsRdmaLocator(MakeSysfsRdmaLocator());
  }
  return MakeSysfsRdmaLocator();
}

}  // namespace nicflow::device_plugin
