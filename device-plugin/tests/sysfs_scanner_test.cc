#include "nicflow/device_plugin/sysfs_scanner.h"

#include <fstream>

#include "nicflow/device_plugin/file_watch.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace nicflow::device_plugin::testing {
namespace {

using ::testing::ElementsAre;

SysfsScanner ScannerFor(const FakeSysfs& sysfs) {
  return SysfsScanner(sysfs.root(), MakeSysfsRdmaLocator());
}

TEST(SysfsScanner, ConnectXVfsWithRdma) {
  TempDir temp;
  FakeSysfs sysfs(temp.path());
  sysfs.AddPf(ConnectXPf("0000:3b:00.0", "ens1f0", 2, /*numa_node=*/1));
  const auto scan = ScannerFor(sysfs).Scan();
  ASSERT_TRUE(scan.ok()) << scan.status();
  ASSERT_EQ(scan->pfs.size(), 1u);
  const PfState& pf = scan->pfs.at("0000:3b:00.0");
  EXPECT_EQ(pf.driver, "mlx5_core");
  EXPECT_EQ(pf.num_vfs, 2);
  EXPECT_EQ(pf.total_vfs, 16);
  EXPECT_EQ(pf.netdev, "ens1f0");
  EXPECT_EQ(pf.operstate, "up");
  EXPECT_EQ(pf.link_type, LinkType::kEther);

  ASSERT_EQ(scan->vfs.size(), 2u);
  const VfDevice& vf = scan->vfs.at(sysfs.VfAddress("0000:3b:00.0", 1));
  EXPECT_EQ(vf.vendor_id, "15b3");
  EXPECT_EQ(vf.device_id, "101e");
  EXPECT_EQ(vf.class_code, "020000");
  EXPECT_EQ(vf.driver, "mlx5_core");
  EXPECT_EQ(vf.numa_node, 1);
  EXPECT_EQ(vf.pf_address, "0000:3b:00.0");
  EXPECT_EQ(vf.vf_index, 1);
  EXPECT_EQ(vf.pf_netdev, "ens1f0");
  EXPECT_THAT(vf.netdevs, ElementsAre("ens1f0v1"));
  EXPECT_EQ(vf.link_type, LinkType::kEther);
  EXPECT_TRUE(vf.iommu_group.empty());
  ASSERT_EQ(vf.rdma.size(), 1u);
  EXPECT_EQ(vf.rdma[0].name, "mlx5_3");
  EXPECT_THAT(
      vf.rdma[0].char_devices,
      ElementsAre("/dev/infiniband/uverbs1", "/dev/infiniband/issm1", "/dev/infiniband/umad1"));
}

TEST(SysfsScanner, E810VfsBoundToVfio) {
  TempDir temp;
  FakeSysfs sysfs(temp.path());
  sysfs.AddPf(E810VfioPf("0000:af:00.0", "ens7f0", 3, /*numa_node=*/0, /*first_iommu_group=*/40));
  const auto scan = ScannerFor(sysfs).Scan();
  ASSERT_TRUE(scan.ok()) << scan.status();
  const VfDevice& vf = scan->vfs.at(sysfs.VfAddress("0000:af:00.0", 2));
  EXPECT_EQ(vf.vendor_id, "8086");
  EXPECT_EQ(vf.device_id, "1889");
  EXPECT_EQ(vf.driver, "vfio-pci");
  EXPECT_EQ(vf.iommu_group, "42");
  EXPECT_TRUE(vf.netdevs.empty());
  EXPECT_EQ(vf.link_type, LinkType::kEther);  // from the PF
  EXPECT_TRUE(vf.rdma.empty());
}

TEST(SysfsScanner, PfWithVfsOnTwoNumaNodes) {
  TempDir temp;
  FakeSysfs sysfs(temp.path());
  FakePf pf = ConnectXPf("0000:3b:00.0", "ens1f0", 4);
  pf.vf_numa = [](int index) { return index < 2 ? 0 : 1; };
  sysfs.AddPf(pf);
  const auto scan = ScannerFor(sysfs).Scan();
  ASSERT_TRUE(scan.ok());
  EXPECT_EQ(scan->vfs.at(sysfs.VfAddress(pf.address, 1)).numa_node, 0);
  EXPECT_EQ(scan->vfs.at(sysfs.VfAddress(pf.address, 2)).numa_node, 1);
}

TEST(SysfsScanner, InfinibandLinkType) {
  TempDir temp;
  FakeSysfs sysfs(temp.path());
  FakePf pf = ConnectXPf("0000:5e:00.0", "ib0", 1);
  pf.link_type = 32;
  sysfs.AddPf(pf);
  const auto scan = ScannerFor(sysfs).Scan();
  ASSERT_TRUE(scan.ok());
  EXPECT_EQ(scan->vfs.begin()->second.link_type, LinkType::kInfiniband);
}

TEST(SysfsScanner, AVfHalfwayThroughCreationIsLeftOutAndFoundWholeOnceDone) {
  // One scanner (with its cache) scans after every step the kernel takes to add a VF. No scan
  // may list the VF before the PF links it, and once it does the VF must be whole, whatever
  // half-made states earlier scans met.
  TempDir temp;
  FakeSysfs sysfs(temp.path());
  FakePf pf = ConnectXPf("0000:3b:00.0", "ens1f0", 1);
  pf.first_iommu_group = 7;
  sysfs.AddPf(pf);
  SysfsScanner scanner = ScannerFor(sysfs);
  ASSERT_TRUE(scanner.Scan().ok());
  const std::string added = sysfs.VfAddress(pf.address, 1);
  const auto virtfn = temp.path() / "devices/pci0000:00" / pf.address / "virtfn1";
  int steps = 0;
  sysfs.OnEachStep([&] {
    ++steps;
    const auto scan = scanner.Scan();
    ASSERT_TRUE(scan.ok()) << scan.status();
    EXPECT_EQ(scan->vfs.contains(added), std::filesystem::is_symlink(virtfn)) << "step " << steps;
  });
  sysfs.SetNumVfs(pf.address, 2);
  sysfs.OnEachStep({});
  EXPECT_GE(steps, 6);
  const auto scan = scanner.Scan();
  ASSERT_TRUE(scan.ok()) << scan.status();
  ASSERT_TRUE(scan->vfs.contains(added));
  const VfDevice& vf = scan->vfs.at(added);
  EXPECT_EQ(vf.vf_index, 1);
  EXPECT_EQ(vf.driver, "mlx5_core");
  EXPECT_EQ(vf.iommu_group, "8");
  EXPECT_THAT(vf.netdevs, ElementsAre("ens1f0v1"));
  ASSERT_EQ(vf.rdma.size(), 1u);
}

TEST(SysfsScanner, IgnoresDevicesWithoutSriov) {
  TempDir temp;
  FakeSysfs sysfs(temp.path());
  sysfs.AddPlainDevice("0000:17:00.0", "0x030200");
  sysfs.AddPf(E810VfioPf("0000:af:00.0", "ens7f0", 1));
  const auto scan = ScannerFor(sysfs).Scan();
  ASSERT_TRUE(scan.ok());
  EXPECT_EQ(scan->pfs.size(), 1u);
  EXPECT_EQ(scan->vfs.size(), 1u);
}

TEST(SysfsScanner, ReportsDirectoriesToWatch) {
  TempDir temp;
  FakeSysfs sysfs(temp.path());
  sysfs.AddPf(ConnectXPf("0000:3b:00.0", "ens1f0", 1));
  const auto scan = ScannerFor(sysfs).Scan();
  ASSERT_TRUE(scan.ok());
  const auto devices = sysfs.root() / "bus/pci/devices";
  EXPECT_THAT(scan->watch_dirs,
              ::testing::UnorderedElementsAre(devices, devices / "0000:3b:00.0",
                                              devices / "0000:3b:00.0/net/ens1f0",
                                              devices / sysfs.VfAddress("0000:3b:00.0", 0)));
}

TEST(SysfsScanner, MissingRootIsNotFound) {
  SysfsScanner scanner("/nonexistent/sys", MakeSysfsRdmaLocator());
  const auto scan = scanner.Scan();
  EXPECT_EQ(scan.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(scan.status().message()),
              ::testing::HasSubstr("/nonexistent/sys/bus/pci/devices"));
}

TEST(SysfsScanner, VerbsLocatorFallsBackToSysfsForFunctionsVerbsDoesNotKnow) {
  // libibverbs only sees this machine's devices, none of which are in the fake tree.
  TempDir temp;
  FakeSysfs sysfs(temp.path());
  sysfs.AddPf(ConnectXPf("0000:3b:00.0", "ens1f0", 1));
  SysfsScanner scanner(sysfs.root(), MakeVerbsRdmaLocator(MakeSysfsRdmaLocator()));
  const auto scan = scanner.Scan();
  ASSERT_TRUE(scan.ok());
  ASSERT_EQ(scan->vfs.begin()->second.rdma.size(), 1u);
  EXPECT_EQ(scan->vfs.begin()->second.rdma[0].name, "mlx5_2");
}

TEST(SysfsScanner, OperStates) {
  EXPECT_TRUE(OperStateIsDown("down"));
  EXPECT_TRUE(OperStateIsDown("lowerlayerdown"));
  EXPECT_TRUE(OperStateIsDown("notpresent"));
  EXPECT_FALSE(OperStateIsDown("up"));
  EXPECT_FALSE(OperStateIsDown("unknown"));
  EXPECT_FALSE(OperStateIsDown("dormant"));
}

}  // namespace
}  // namespace nicflow::device_plugin::testing

namespace nicflow::device_plugin {
namespace {

TEST(LinkEventSocket, OpensAndDrainsWithoutBlocking) {
  // Netlink may be forbidden in restricted sandboxes; then Create says so and the daemon falls
  // back to polling.
  auto socket = LinkEventSocket::Create();
  if (!socket.ok()) {
    EXPECT_EQ(socket.status().code(), absl::StatusCode::kUnavailable);
    GTEST_SKIP() << socket.status();
  }
  EXPECT_GE(socket->fd(), 0);
  (void)socket->Drain();  // returns at once whether or not the host had link changes
}

TEST(Inotify, ReportsEntryNamesAndMissingPaths) {
  auto inotify = Inotify::Create();
  ASSERT_TRUE(inotify.ok());
  testing::TempDir temp;
  ASSERT_TRUE(inotify->AddWatch(temp.path(), 0x100 /*IN_CREATE*/).ok());
  std::ofstream(temp.path() / "kubelet.sock") << "";
  std::vector<std::string> names;
  inotify->Drain([&](const InotifyEvent& event) { names.emplace_back(event.name); });
  EXPECT_THAT(names, ::testing::ElementsAre("kubelet.sock"));
  const auto missing = inotify->AddWatch(temp.path() / "nope", 0x100);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), ::testing::HasSubstr("nope"));
}

}  // namespace
}  // namespace nicflow::device_plugin
