#include "nicflow/device_plugin/device_tracker.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace nicflow::device_plugin::testing {
namespace {

constexpr char kPf[] = "0000:3b:00.0";

class DeviceTrackerTest : public ::testing::Test {
 protected:
  DeviceTrackerTest() : sysfs_(temp_.path()), scanner_(sysfs_.root(), MakeSysfsRdmaLocator()) {
    sysfs_.AddPf(ConnectXPf(kPf, "ens1f0", 3));
  }

  std::vector<TrackedDevice> Update() {
    auto scan = scanner_.Scan();
    EXPECT_TRUE(scan.ok()) << scan.status();
    return tracker_.Update(*scan);
  }

  std::string Vf(int index) const { return sysfs_.VfAddress(kPf, index); }

  static const TrackedDevice* Find(const std::vector<TrackedDevice>& devices,
                                   const std::string& id) {
    for (const auto& device : devices) {
      if (device.vf.pci_address == id) return &device;
    }
    return nullptr;
  }

  TempDir temp_;
  FakeSysfs sysfs_;
  SysfsScanner scanner_;
  DeviceTracker tracker_;
};

TEST_F(DeviceTrackerTest, VfsWaitingDownInTheHostNamespaceAreHealthy) {
  const auto devices = Update();
  ASSERT_EQ(devices.size(), 3u);
  for (const auto& device : devices) {
    EXPECT_EQ(device.health, Health::kHealthy) << device.reason;
    EXPECT_TRUE(device.reason.empty());
  }
}

TEST_F(DeviceTrackerTest, PfLinkDownGivesAReasonNamingTheLink) {
  Update();
  sysfs_.SetOperState(kPf, "down");
  const auto devices = Update();
  EXPECT_EQ(devices[0].health, Health::kUnhealthy);
  EXPECT_EQ(devices[0].reason, "PF 0000:3b:00.0 link ens1f0 is down");
}

TEST_F(DeviceTrackerTest, UnboundVfKeepsItsLastDriverForSelection) {
  Update();
  sysfs_.UnbindDriver(Vf(1));
  const auto devices = Update();
  const TrackedDevice* vf = Find(devices, Vf(1));
  ASSERT_NE(vf, nullptr);
  EXPECT_EQ(vf->health, Health::kUnhealthy);
  EXPECT_EQ(vf->reason, "driver unbound");
  EXPECT_EQ(vf->vf.driver, "mlx5_core");
  EXPECT_EQ(vf->vf.rdma.size(), 1u);
}

TEST_F(DeviceTrackerTest, VanishedVfStaysUnhealthyWhileItsPfStillCountsIt) {
  Update();
  sysfs_.RemoveDevice(Vf(2));
  auto devices = Update();
  const TrackedDevice* vf = Find(devices, Vf(2));
  ASSERT_NE(vf, nullptr);
  EXPECT_EQ(vf->reason, "VF " + Vf(2) + " is gone from sysfs");
  EXPECT_EQ(vf->vf.vf_index, 2);
}

TEST_F(DeviceTrackerTest, LoweringNumVfsRemovesVfsForGood) {
  Update();
  sysfs_.SetNumVfs(kPf, 1);
  auto devices = Update();
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].vf.pci_address, Vf(0));
  sysfs_.SetNumVfs(kPf, 4);
  devices = Update();
  ASSERT_EQ(devices.size(), 4u);
  EXPECT_EQ(Find(devices, Vf(3))->health, Health::kHealthy);
}

TEST_F(DeviceTrackerTest, VanishedPfMakesItsVfsUnhealthy) {
  Update();
  sysfs_.RemoveDevice(kPf);
  const auto devices = Update();
  ASSERT_EQ(devices.size(), 3u);
  for (const auto& device : devices) {
    EXPECT_EQ(device.health, Health::kUnhealthy);
    EXPECT_EQ(device.reason, "PF 0000:3b:00.0 is gone");
  }
}

TEST_F(DeviceTrackerTest, PfDriverUnboundIsAReason) {
  Update();
  sysfs_.UnbindDriver(kPf);
  const auto devices = Update();
  EXPECT_EQ(devices[0].reason, "PF 0000:3b:00.0 driver unbound");
}

TEST_F(DeviceTrackerTest, SeveralReasonsAreJoined) {
  Update();
  sysfs_.UnbindDriver(Vf(0));
  sysfs_.SetOperState(kPf, "down");
  const auto devices = Update();
  EXPECT_EQ(Find(devices, Vf(0))->reason, "driver unbound; PF 0000:3b:00.0 link ens1f0 is down");
}

}  // namespace
}  // namespace nicflow::device_plugin::testing
