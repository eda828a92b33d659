#include "test_util.h"

#include <stdlib.h>
#include <unistd.h>

#include <fstream>

#include "gtest/gtest.h"
#include "spdlog/spdlog.h"

namespace nicflow::device_plugin::testing {

namespace fs = std::filesystem;

TempDir::TempDir() {
  // $TMPDIR if set; else tmpfs when there is one (fake trees create thousands of small files,
  // which is several times faster there than on a journaling disk), else /tmp.
  const char* tmpdir = std::getenv("TMPDIR");
  std::string base = tmpdir != nullptr ? tmpdir : "/tmp";
  if (tmpdir == nullptr && ::access("/dev/shm", W_OK) == 0) base = "/dev/shm";
  std::string pattern = base + "/nicflow-dp-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void WriteFileAtomically(const fs::path& path, const std::string& text) {
  const fs::path temp = path.parent_path() / ("." + path.filename().string() + ".tmp");
  {
    std::ofstream out(temp, std::ios::trunc);
    out << text;
  }
  fs::rename(temp, path);
}

FakePf ConnectXPf(const std::string& address, const std::string& netdev, int num_vfs,
                  int numa_node) {
  FakePf pf;
  pf.address = address;
  pf.vendor = "15b3";
  pf.pf_device = "101d";
  pf.vf_device = "101e";
  pf.pf_driver = pf.vf_driver = "mlx5_core";
  pf.netdev = netdev;
  pf.numa_node = numa_node;
  pf.total_vfs = 16;
  pf.num_vfs = num_vfs;
  pf.rdma = true;
  return pf;
}

FakePf E810VfioPf(const std::string& address, const std::string& netdev, int num_vfs, int numa_node,
                  int first_iommu_group) {
  FakePf pf;
  pf.address = address;
  pf.vendor = "8086";
  pf.pf_device = "1593";
  pf.vf_device = "1889";
  pf.pf_driver = "ice";
  pf.vf_driver = "vfio-pci";
  pf.netdev = netdev;
  pf.numa_node = numa_node;
  pf.total_vfs = 64;
  pf.num_vfs = num_vfs;
  pf.vf_netdevs = false;  // vfio-pci VFs have no netdev
  pf.first_iommu_group = first_iommu_group;
  return pf;
}

PluginEnv::PluginEnv()
    : kubelet_dir_(temp_.path() / "device-plugins"),
      registry_dir_(temp_.path() / "plugins_registry"),
      config_path_(temp_.path() / "config" / "config.json"),
      cdi_dir_(temp_.path() / "cdi"),
      sysfs_(temp_.path() / "sys") {
  fs::create_directories(kubelet_dir_);
  fs::create_directories(registry_dir_);
  fs::create_directories(config_path_.parent_path());
  fs::create_directories(cdi_dir_);
  kubelet_ = std::make_unique<FakeKubelet>(kubelet_dir_);
}

PluginEnv::~PluginEnv() {
  StopDaemon();
  kubelet_->Stop();
}

DaemonOptions PluginEnv::Options() const {
  DaemonOptions options;
  options.config_path = config_path_;
  options.kubelet_dir = kubelet_dir_;
  options.plugins_registry_dir = registry_dir_;
  options.sysfs_root = sysfs_.root();
  options.poll_interval = std::chrono::milliseconds(60'000);
  options.cdi_dir = cdi_dir_;
  options.watch_netlink = false;
  return options;
}

absl::Status PluginEnv::Start(const std::string& config, DaemonOptions options,
                              bool start_kubelet) {
  WriteFileAtomically(config_path_, config);
  if (start_kubelet) {
    if (auto status = kubelet_->Start(); !status.ok()) return status;
  }
  auto daemon = Daemon::Create(std::move(options));
  if (!daemon.ok()) return daemon.status();
  daemon_ = *std::move(daemon);
  return daemon_->Start();
}

void PluginEnv::StopDaemon() {
  if (daemon_ != nullptr) daemon_->Stop();
  daemon_.reset();
}

std::string HealthOf(const DeviceList& devices, const std::string& id) {
  for (const auto& device : devices) {
    if (device.id() == id) return device.health();
  }
  return "";
}

}  // namespace nicflow::device_plugin::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // Quiet by default; NICFLOW_TEST_LOG=debug shows the daemon's log.
  const char* level = std::getenv("NICFLOW_TEST_LOG");
  spdlog::set_level(level != nullptr ? spdlog::level::from_str(level) : spdlog::level::off);
  return RUN_ALL_TESTS();
}
